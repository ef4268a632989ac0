/* slate_picture: draws the slate's still picture. The card is a small
 * libavfilter graph (color source, drawtext per line, format) run for one
 * frame; options are set through AVOptions, never through a filter string,
 * so a title needs no escaping. An image is decoded with
 * libavformat/libavcodec (image2) and letterboxed with libswscale. */
#include "transcoder/slate_picture.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavfilter/avfilter.h>
#include <libavfilter/buffersink.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>

#include "core/log.h"

/* Fonts in the order tried: CJK first (Debian's fonts-noto-cjk), DejaVu
 * (fonts-dejavu-core: Latin only, the Chinese line shows as boxes). */
static const char *const fonts[] = {
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
};

static const char *pick_font(void) {
  static _Atomic int warned;
  for (size_t i = 0; i < sizeof(fonts) / sizeof(fonts[0]); i++) {
    if (access(fonts[i], R_OK) == 0) {
      if (i > 1 && !warned++)
        log_warn("slate", "no CJK font (install fonts-noto-cjk): using font=%s", fonts[i]);
      return fonts[i];
    }
  }
  if (!warned++)
    log_warn("slate", "no font found: the slate card has no text");
  return NULL;
}

/* ---- the card ---- */

static int add_text(AVFilterGraph *g, AVFilterContext **last, const char *font, const char *text, int size,
                    const char *y, const char *color) {
  char name[32]; /* unique in the graph */
  snprintf(name, sizeof name, "text%u", g->nb_filters);
  AVFilterContext *f = avfilter_graph_alloc_filter(g, avfilter_get_by_name("drawtext"), name);
  if (!f)
    return AVERROR(ENOMEM);
  char fs[16];
  snprintf(fs, sizeof fs, "%d", size);
  int rc = 0;
  rc |= av_opt_set(f, "fontfile", font, AV_OPT_SEARCH_CHILDREN);
  rc |= av_opt_set(f, "text", text, AV_OPT_SEARCH_CHILDREN);
  rc |= av_opt_set(f, "expansion", "none", AV_OPT_SEARCH_CHILDREN);
  rc |= av_opt_set(f, "fontsize", fs, AV_OPT_SEARCH_CHILDREN);
  rc |= av_opt_set(f, "fontcolor", color, AV_OPT_SEARCH_CHILDREN);
  rc |= av_opt_set(f, "x", "(w-text_w)/2", AV_OPT_SEARCH_CHILDREN);
  rc |= av_opt_set(f, "y", y, AV_OPT_SEARCH_CHILDREN);
  if (rc < 0 || (rc = avfilter_init_str(f, NULL)) < 0 || (rc = avfilter_link(*last, 0, f, 0)) < 0)
    return rc < 0 ? rc : AVERROR(EINVAL);
  *last = f;
  return 0;
}

static AVFrame *card(const char *title, int w, int h) {
  AVFilterGraph *g = avfilter_graph_alloc();
  AVFrame *frame = av_frame_alloc();
  AVFilterContext *src = NULL, *fmt = NULL, *sink = NULL, *last;
  char args[96];
  snprintf(args, sizeof args, "c=0x16213e:s=%dx%d:r=1:d=1", w, h);
  int rc = !g || !frame ? AVERROR(ENOMEM) : 0;
  if (rc == 0)
    rc = avfilter_graph_create_filter(&src, avfilter_get_by_name("color"), "bg", args, NULL, g);
  last = src;
  const char *font = rc == 0 ? pick_font() : NULL;
  if (font) {
    int big = h / 10 > 8 ? h / 10 : 8, mid = h / 14 > 6 ? h / 14 : 6, small = h / 18 > 6 ? h / 18 : 6;
    if (rc == 0 && title && title[0])
      rc = add_text(g, &last, font, title, big, "h*0.30", "white");
    if (rc == 0)
      rc = add_text(g, &last, font, "节目马上回来", mid, "h*0.52", "0xf0c060");
    if (rc == 0)
      rc = add_text(g, &last, font, "We'll be right back", small, "h*0.66", "0xd0d0d0");
  }
  if (rc == 0)
    rc = avfilter_graph_create_filter(&fmt, avfilter_get_by_name("format"), "fmt", "pix_fmts=yuv420p", NULL, g);
  if (rc == 0)
    rc = avfilter_link(last, 0, fmt, 0);
  if (rc == 0)
    rc = avfilter_graph_create_filter(&sink, avfilter_get_by_name("buffersink"), "out", NULL, NULL, g);
  if (rc == 0)
    rc = avfilter_link(fmt, 0, sink, 0);
  if (rc == 0)
    rc = avfilter_graph_config(g, NULL);
  if (rc == 0)
    rc = av_buffersink_get_frame(sink, frame);
  avfilter_graph_free(&g);
  if (rc < 0) {
    log_error("slate", "card not drawn size=%dx%d err=%s", w, h, av_err2str(rc));
    av_frame_free(&frame);
  }
  return frame;
}

/* ---- an image ---- */

static AVFrame *decode_image(const char *path) {
  AVFormatContext *fc = NULL;
  AVCodecContext *dec = NULL;
  AVPacket *pkt = av_packet_alloc();
  AVFrame *frame = av_frame_alloc();
  int rc = !pkt || !frame ? AVERROR(ENOMEM) : avformat_open_input(&fc, path, NULL, NULL);
  if (rc >= 0)
    rc = avformat_find_stream_info(fc, NULL);
  const AVCodec *codec = NULL;
  int si = rc >= 0 ? av_find_best_stream(fc, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0) : rc;
  rc = si;
  if (rc >= 0 && !(dec = avcodec_alloc_context3(codec)))
    rc = AVERROR(ENOMEM);
  if (rc >= 0)
    rc = avcodec_parameters_to_context(dec, fc->streams[si]->codecpar);
  if (rc >= 0)
    rc = avcodec_open2(dec, codec, NULL);
  bool got = false;
  while (rc >= 0 && !got) {
    rc = av_read_frame(fc, pkt);
    if (rc < 0) { /* end of file: drain */
      avcodec_send_packet(dec, NULL);
      rc = avcodec_receive_frame(dec, frame);
      got = rc == 0;
      break;
    }
    if (pkt->stream_index == si && avcodec_send_packet(dec, pkt) >= 0)
      got = avcodec_receive_frame(dec, frame) == 0;
    av_packet_unref(pkt);
  }
  if (!got) {
    log_warn("slate", "slate_image not readable path=%s err=%s: using the card", path,
             av_err2str(rc < 0 ? rc : AVERROR_INVALIDDATA));
    av_frame_free(&frame);
  }
  avcodec_free_context(&dec);
  avformat_close_input(&fc);
  av_packet_free(&pkt);
  return frame;
}

static int even(double v) {
  int n = (int)(v + 0.5) & ~1;
  return n < 2 ? 2 : n;
}

/* src fitted into a black w x h picture, its aspect ratio kept. */
static AVFrame *letterbox(const AVFrame *src, int w, int h) {
  AVFrame *f = av_frame_alloc();
  if (!f)
    return NULL;
  f->width = w;
  f->height = h;
  f->format = AV_PIX_FMT_YUV420P;
  if (av_frame_get_buffer(f, 0) < 0) {
    av_frame_free(&f);
    return NULL;
  }
  ptrdiff_t ls[4] = {f->linesize[0], f->linesize[1], f->linesize[2], 0};
  av_image_fill_black(f->data, ls, AV_PIX_FMT_YUV420P, AVCOL_RANGE_MPEG, w, h);
  double sar =
      src->sample_aspect_ratio.num > 0 && src->sample_aspect_ratio.den > 0 ? av_q2d(src->sample_aspect_ratio) : 1.0;
  double sw = src->width * sar, sh = src->height;
  double k = (double)w / sw < (double)h / sh ? (double)w / sw : (double)h / sh;
  int dw = even(sw * k), dh = even(sh * k);
  if (dw > w)
    dw = w & ~1;
  if (dh > h)
    dh = h & ~1;
  int ox = ((w - dw) / 2) & ~1, oy = ((h - dh) / 2) & ~1;
  struct SwsContext *sws =
      sws_getContext(src->width, src->height, src->format, dw, dh, AV_PIX_FMT_YUV420P, SWS_BICUBIC, NULL, NULL, NULL);
  if (!sws) {
    av_frame_free(&f);
    return NULL;
  }
  uint8_t *dst[4] = {f->data[0] + (ptrdiff_t)oy * f->linesize[0] + ox,
                     f->data[1] + (ptrdiff_t)(oy / 2) * f->linesize[1] + ox / 2,
                     f->data[2] + (ptrdiff_t)(oy / 2) * f->linesize[2] + ox / 2, NULL};
  sws_scale(sws, (const uint8_t *const *)src->data, src->linesize, 0, src->height, dst, f->linesize);
  sws_freeContext(sws);
  return f;
}

AVFrame *slate_picture(const char *title, const char *image_path, int width, int height) {
  if (image_path && image_path[0]) {
    AVFrame *img = decode_image(image_path);
    if (img) {
      AVFrame *f = letterbox(img, width, height);
      av_frame_free(&img);
      if (f)
        return f;
    }
  }
  return card(title, width, height);
}
