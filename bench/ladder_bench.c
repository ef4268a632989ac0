/* ladder_bench: CPU cost of our transcoding pipeline on a file.
 *
 *   ladder_bench INPUT.flv [threads]
 *
 * Reads INPUT with libavformat, feeds it as the channel would (codec
 * parameters, then packets in milliseconds) through a pipeline with the
 * default ladder (config_defaults: 720p/480p/360p + source) into a null
 * writer, as fast as the pipeline takes it (blocking queues, nothing
 * dropped), and prints CPU seconds per media second. It also prints the
 * x264 settings it used, so that bench/ladder_bench.sh gives the ffmpeg CLI
 * the same ones. Not run by ctest. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <libavformat/avformat.h>

#include "config/config.h"
#include "relay/channel.h"
#include "transcoder/pipeline.h"

static _Atomic uint64_t packets_out[HLS_MAX_RENDITIONS];
static int writers[HLS_MAX_RENDITIONS];

static int null_begin(void *opaque, struct pipeline *p, const struct hls_stream_layout *layout) {
  (void)opaque;
  for (int i = 0; i < layout->count; i++)
    fprintf(stderr, "rendition %d: %s %dx%d\n", i, layout->r[i].name, layout->r[i].width, layout->r[i].height);
  pipeline_begun(p, 1);
  return 0;
}

static void *null_open(void *opaque, uint32_t timeline, int index, const AVCodecParameters *par, AVRational tb) {
  (void)opaque;
  (void)timeline;
  (void)par;
  (void)tb;
  return &writers[index];
}

static int null_write(void *w, const AVPacket *pkt, int64_t arrival_ms) {
  (void)pkt;
  (void)arrival_ms;
  atomic_fetch_add(&packets_out[(int *)w - writers], 1);
  return 0;
}

static void null_close(void *w, bool flush) {
  (void)w;
  (void)flush;
}

static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec / 1e6;
}

static double wall_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s INPUT [threads]\n", argv[0]);
    return 2;
  }
  av_log_set_level(AV_LOG_ERROR);
  static struct config cfg;
  config_defaults(&cfg);
  if (argc > 2)
    cfg.transcoder.threads = atoi(argv[2]);

  AVFormatContext *fmt = NULL;
  if (avformat_open_input(&fmt, argv[1], NULL, NULL) < 0 || avformat_find_stream_info(fmt, NULL) < 0) {
    fprintf(stderr, "cannot read %s\n", argv[1]);
    return 1;
  }
  int vs = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
  int as = av_find_best_stream(fmt, AVMEDIA_TYPE_AUDIO, -1, -1, NULL, 0);
  struct channel_feed_info info = {0};
  if (vs >= 0) {
    info.video = fmt->streams[vs]->codecpar;
    info.fps = av_q2d(fmt->streams[vs]->avg_frame_rate);
  }
  if (as >= 0)
    info.audio = fmt->streams[as]->codecpar;

  struct pipeline_output out = {.begin = null_begin, .open = null_open, .write = null_write, .close = null_close};
  double cpu0 = cpu_seconds(), wall0 = wall_seconds();
  struct pipeline *p = pipeline_new("bench", &cfg.transcoder, &cfg.hls, &out, false);
  if (!p)
    return 1;
  pipeline_start(p, &info);
  AVPacket *pkt = av_packet_alloc();
  int64_t first = AV_NOPTS_VALUE, last = 0;
  while (av_read_frame(fmt, pkt) >= 0) {
    int idx = pkt->stream_index == vs ? CHANNEL_VIDEO : pkt->stream_index == as ? CHANNEL_AUDIO : -1;
    if (idx >= 0) {
      av_packet_rescale_ts(pkt, fmt->streams[pkt->stream_index]->time_base, (AVRational){1, 1000});
      pkt->stream_index = idx;
      if (idx == CHANNEL_VIDEO) {
        if (first == AV_NOPTS_VALUE)
          first = pkt->pts;
        if (pkt->pts > last)
          last = pkt->pts;
      }
      pipeline_packet(p, pkt, 1700000000000 + pkt->dts);
    }
    av_packet_unref(pkt);
  }
  pipeline_stop(p);
  pipeline_wait_idle(p);
  double cpu = cpu_seconds() - cpu0, wall = wall_seconds() - wall0;
  struct pipeline_stats st;
  pipeline_get_stats(p, &st);
  pipeline_free(p);
  av_packet_free(&pkt);
  avformat_close_input(&fmt);

  double media = first == AV_NOPTS_VALUE ? 0 : (last - first) / 1000.0 + 1.0 / (info.fps > 0 ? info.fps : 30);
  for (int i = 0; i < HLS_MAX_RENDITIONS; i++)
    if (atomic_load(&packets_out[i]))
      fprintf(stderr, "rendition %d: %llu packets out\n", i, (unsigned long long)atomic_load(&packets_out[i]));
  printf("galarelay media_s=%.2f cpu_s=%.2f wall_s=%.2f cpu_per_media_s=%.3f decode_errors=%llu "
         "dropped=%llu\n",
         media, cpu, wall, media > 0 ? cpu / media : 0, (unsigned long long)st.decode_errors,
         (unsigned long long)st.input_dropped);
  return 0;
}
