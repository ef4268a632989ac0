/* hls_serve: the HLS half of galarelay on its own, for end-to-end checks
 * and load tests without RTMP or the transcoder: a thread encodes a moving
 * test pattern in real time with libx264 at two sizes (keyframes forced
 * every segment_duration on both, as the pipeline does) and a tone with
 * FFmpeg's AAC encoder, through the real packagers and store, served by
 * core/http.c on libwebsockets as in the daemon.
 *
 *   hls_serve [PORT] [SECONDS]      then: tests/integration/hls_check.py \
 *                                         http://127.0.0.1:PORT/hls/gala/master.m3u8
 * SECONDS = 0 runs until SIGINT/SIGTERM. */
#include <libwebsockets.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libavcodec/avcodec.h>
#include <libavutil/opt.h>

#include "config/config.h"
#include "daemon/app.h"
#include "core/http.h"
#include "core/log.h"
#include "transcoder/hls/hls_http.h"
#include "transcoder/hls/hls_packager.h"

#define VIDEOS 2
static const int sizes[VIDEOS][2] = {{640, 360}, {320, 180}};

struct producer {
  struct hls_stream *st;
  uint32_t timeline;
  double seg_duration;
  _Atomic int stop;
  pthread_t thread;
  uv_signal_t sig_int, sig_term;
  uv_timer_t end;
  struct app *app;
};

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static AVCodecContext *video_encoder(int w, int h) {
  const AVCodec *codec = avcodec_find_encoder_by_name("libx264");
  AVCodecContext *enc = avcodec_alloc_context3(codec);
  enc->width = w;
  enc->height = h;
  enc->pix_fmt = AV_PIX_FMT_YUV420P;
  enc->time_base = (AVRational){1, 30};
  enc->framerate = (AVRational){30, 1};
  enc->gop_size = 600;
  enc->bit_rate = w * h * 2;
  enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  av_opt_set(enc->priv_data, "preset", "ultrafast", 0);
  av_opt_set(enc->priv_data, "tune", "zerolatency", 0);
  av_opt_set(enc->priv_data, "x264-params", "scenecut=0", 0);
  if (avcodec_open2(enc, codec, NULL) < 0)
    exit(1);
  return enc;
}

static AVCodecContext *audio_encoder(void) {
  const AVCodec *codec = avcodec_find_encoder(AV_CODEC_ID_AAC);
  AVCodecContext *enc = avcodec_alloc_context3(codec);
  enc->sample_rate = 48000;
  enc->sample_fmt = AV_SAMPLE_FMT_FLTP;
  av_channel_layout_default(&enc->ch_layout, 2);
  enc->bit_rate = 96000;
  enc->time_base = (AVRational){1, 48000};
  enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  if (avcodec_open2(enc, codec, NULL) < 0)
    exit(1);
  return enc;
}

static void send_out(AVCodecContext *enc, struct hls_packager *pk, AVPacket *pkt) {
  while (avcodec_receive_packet(enc, pkt) == 0) {
    av_packet_rescale_ts(pkt, enc->time_base, (AVRational){1, 1000}); /* ms, as RTMP gives */
    hls_packager_write(pk, pkt, now_ms());
    av_packet_unref(pkt);
  }
}

static void *produce(void *arg) {
  struct producer *p = arg;
  AVCodecContext *venc[VIDEOS], *aenc = audio_encoder();
  struct hls_packager *pk[VIDEOS + 1];
  AVFrame *vf[VIDEOS];
  AVPacket *pkt = av_packet_alloc();
  AVCodecParameters *par = avcodec_parameters_alloc();
  for (int r = 0; r < VIDEOS; r++) {
    venc[r] = video_encoder(sizes[r][0], sizes[r][1]);
    avcodec_parameters_from_context(par, venc[r]);
    pk[r] = hls_stream_packager(p->st, p->timeline, r, par, (AVRational){1, 1000});
    vf[r] = av_frame_alloc();
    vf[r]->format = AV_PIX_FMT_YUV420P;
    vf[r]->width = sizes[r][0];
    vf[r]->height = sizes[r][1];
    av_frame_get_buffer(vf[r], 0);
  }
  avcodec_parameters_from_context(par, aenc);
  pk[VIDEOS] = hls_stream_packager(p->st, p->timeline, VIDEOS, par, (AVRational){1, 1000});
  AVFrame *af = av_frame_alloc();
  af->format = aenc->sample_fmt;
  af->nb_samples = aenc->frame_size;
  af->sample_rate = 48000;
  av_channel_layout_copy(&af->ch_layout, &aenc->ch_layout);
  av_frame_get_buffer(af, 0);

  int64_t start = now_ms(), audio_pos = 0;
  int keyint = (int)(p->seg_duration * 30 + 0.5);
  for (int64_t i = 0; !atomic_load(&p->stop); i++) {
    int64_t due = start + i * 1000 / 30;
    int64_t wait = due - now_ms();
    if (wait > 0)
      usleep((useconds_t)wait * 1000);
    for (int r = 0; r < VIDEOS; r++) {
      AVFrame *f = vf[r];
      av_frame_make_writable(f);
      for (int y = 0; y < f->height; y++)
        for (int x = 0; x < f->width; x++)
          f->data[0][y * f->linesize[0] + x] =
              (uint8_t)(((x + i * 4) % f->width < f->width / 8) ? 235 : 16 + (y & 127));
      memset(f->data[1], 128, (size_t)(f->linesize[1] * f->height / 2));
      memset(f->data[2], (int)(96 + (i / 30) % 64), (size_t)(f->linesize[2] * f->height / 2));
      f->pts = i;
      f->pict_type = i % keyint == 0 ? AV_PICTURE_TYPE_I : AV_PICTURE_TYPE_NONE;
      avcodec_send_frame(venc[r], f);
      send_out(venc[r], pk[r], pkt);
    }
    while (audio_pos * 30 < (i + 1) * 48000) {
      av_frame_make_writable(af);
      for (int ch = 0; ch < 2; ch++)
        for (int s = 0; s < af->nb_samples; s++)
          ((float *)af->data[ch])[s] = 0.2f * (float)((audio_pos + s) % 109 < 54 ? 1 : -1);
      af->pts = audio_pos;
      audio_pos += af->nb_samples;
      avcodec_send_frame(aenc, af);
      send_out(aenc, pk[VIDEOS], pkt);
    }
  }
  for (int r = 0; r <= VIDEOS; r++) {
    hls_packager_flush(pk[r]);
    hls_packager_free(pk[r]);
  }
  for (int r = 0; r < VIDEOS; r++) {
    avcodec_free_context(&venc[r]);
    av_frame_free(&vf[r]);
  }
  avcodec_free_context(&aenc);
  av_frame_free(&af);
  av_packet_free(&pkt);
  avcodec_parameters_free(&par);
  return NULL;
}

static void shutdown_all(struct producer *p) {
  if (atomic_exchange(&p->stop, 1))
    return;
  pthread_join(p->thread, NULL); /* a bench tool may block its loop for one frame */
  hls_stream_end(p->st);
  hls_http_stop(p->app->hls, NULL, NULL);
  lws_context_destroy(p->app->lws);
  uv_close((uv_handle_t *)&p->sig_int, NULL);
  uv_close((uv_handle_t *)&p->sig_term, NULL);
  uv_close((uv_handle_t *)&p->end, NULL);
}

static void on_signal(uv_signal_t *s, int num) {
  (void)num;
  shutdown_all(s->data);
}

static void on_end(uv_timer_t *t) { shutdown_all(t->data); }

int main(int argc, char **argv) {
  int port = argc > 1 ? atoi(argv[1]) : 8089;
  int seconds = argc > 2 ? atoi(argv[2]) : 0;
  static struct config cfg;
  config_defaults(&cfg);
  snprintf(cfg.server.state_dir, sizeof cfg.server.state_dir, "/tmp/hls_serve-state");
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct app app = {.loop = &loop, .cfg = &cfg};
  app.hls = hls_http_start(&loop, &cfg.hls, cfg.server.state_dir);
  if (!app.hls)
    return 1;
  lws_set_log_level(LLL_ERR | LLL_WARN, NULL);
  static struct lws_protocols protocols[2];
  protocols[0] = *http_protocol();
  static const struct lws_protocol_vhost_options mime = {NULL, NULL, ".m4s", "video/iso.segment"};
  static struct lws_http_mount mount = {.mountpoint = "/",
                                        .mountpoint_len = 1,
                                        .origin = "http",
                                        .origin_protocol = LWSMPRO_CALLBACK,
                                        .extra_mimetypes = &mime};
  void *loops[] = {&loop};
  struct lws_context_creation_info info = {0};
  info.options = LWS_SERVER_OPTION_LIBUV;
  info.foreign_loops = loops;
  info.port = port;
  info.iface = "127.0.0.1";
  info.protocols = protocols;
  info.mounts = &mount;
  info.user = &app;
  info.pcontext = &app.lws;
  app.lws = lws_create_context(&info);
  if (!app.lws)
    return 1;

  struct producer p = {.app = &app, .seg_duration = cfg.hls.segment_duration};
  p.st = hls_stream_get(app.hls, "gala");
  struct hls_stream_layout lay = {.count = VIDEOS + 1};
  for (int r = 0; r < VIDEOS; r++) {
    lay.r[r] = (struct hls_rendition_desc){.kind = HLS_VIDEO,
                                           .width = sizes[r][0],
                                           .height = sizes[r][1],
                                           .fps = 30,
                                           .bandwidth = sizes[r][0] * sizes[r][1] * 2};
    snprintf(lay.r[r].name, sizeof lay.r[r].name, "%dp", sizes[r][1]);
  }
  lay.r[VIDEOS] = (struct hls_rendition_desc){.name = "audio", .kind = HLS_AUDIO, .bandwidth = 96000, .channels = 2};
  p.timeline = hls_stream_begin(p.st, &lay);
  pthread_create(&p.thread, NULL, produce, &p);
  uv_signal_init(&loop, &p.sig_int);
  uv_signal_init(&loop, &p.sig_term);
  p.sig_int.data = p.sig_term.data = &p;
  uv_signal_start(&p.sig_int, on_signal, SIGINT);
  uv_signal_start(&p.sig_term, on_signal, SIGTERM);
  uv_timer_init(&loop, &p.end);
  p.end.data = &p;
  if (seconds > 0)
    uv_timer_start(&p.end, on_end, (uint64_t)seconds * 1000, 0);
  log_info("hls_serve", "serving http://127.0.0.1:%d/hls/gala/master.m3u8", port);
  uv_run(&loop, UV_RUN_DEFAULT);
  lws_context_destroy(app.lws);
  int rc = uv_loop_close(&loop);
  log_info("hls_serve", "stopped loop_close=%d", rc);
  return 0;
}
