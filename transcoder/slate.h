/* slate: the standby stream a channel's renditions carry while no feed is
 * live, so that players keep playing instead of stalling: a still picture
 * (the channel's slate_image, or a generated card with its title and
 * "节目马上回来 / We'll be right back") and silence.
 *
 * It costs almost nothing to keep going because nothing is encoded while
 * it runs. slate_new() renders the picture once per video rendition size
 * and encodes one GOP of it with libx264 (an IDR, then P-frames that are
 * all skips), and one frame of silent AAC; slate_next() then replays those
 * packets with advancing timestamps: the GOP restarts at its IDR on every
 * segment boundary (the same segment clock the pipeline forces keyframes
 * on, so segments line up across renditions), the AAC frame repeats.
 *
 * slate_player runs a slate on a worker thread at real-time pace into
 * writers (the HLS packagers in the daemon, see transcoder.c): the loop
 * begins an HLS timeline for it and halts it when a real feed's timeline
 * begins, so each switch is a discontinuity. */
#ifndef GALARELAY_SLATE_H
#define GALARELAY_SLATE_H

#include <stdbool.h>
#include <stdint.h>

#include <libavcodec/avcodec.h>

#include "transcoder/hls/hls_store.h"

#define SLATE_SAMPLE_RATE 48000
#define SLATE_AAC_FRAME 1024 /* samples per AAC frame */

struct slate_params {
  char title[256];         /* the card's first line; "" = none */
  char image[512];         /* PNG/JPEG shown instead of the card; "" = card */
  double segment_duration; /* seconds: keyframes on this clock */
  double part_duration;    /* seconds: frames are paced so parts fill it */
};

struct slate;

/* Renders and encodes (tens of ms per rendition: call it off the loop).
 * A video rendition of the layout gets the picture at its width x height,
 * the audio rendition (if any) stereo silence at 48 kHz. An image that
 * cannot be read falls back to the card (logged). NULL on error (logged). */
struct slate *slate_new(const struct slate_params *params, const struct hls_stream_layout *layout);
void slate_free(struct slate *s);

/* Whether s was made from these params and layout (then it can be reused). */
bool slate_matches(const struct slate *s, const struct slate_params *params, const struct hls_stream_layout *layout);

/* Codec parameters of rendition i (with extradata); owned by s. */
const AVCodecParameters *slate_codecpar(const struct slate *s, int index);

/* Video frame duration in ms (the same for every video rendition). */
int64_t slate_frame_ms(const struct slate *s);
/* The frame duration a slate has for this part duration (seconds): about
 * 100 ms or less, a whole number of frames per part. */
int64_t slate_frame_ms_for(double part_duration);

/* Restart the timestamps at 0. */
void slate_rewind(struct slate *s);
/* The pts (ms) of the packet slate_next() will return. */
int64_t slate_peek_pts(const struct slate *s);
/* The next packet across renditions in timestamp order: a reference into
 * pkt (unref it), pts = dts in ms from the rewind, duration set,
 * stream_index = the rendition's index in the layout. 0 or an AVERROR. */
int slate_next(struct slate *s, AVPacket *pkt);

/* ---- a slate on its own thread, at real-time pace ---- */

/* Same contract as pipeline_output's open/write/close: open and close run
 * on the player's thread, write too. */
struct slate_output {
  void *(*open)(void *opaque, uint32_t timeline, int index, const AVCodecParameters *par, AVRational time_base);
  int (*write)(void *writer, const AVPacket *pkt, int64_t arrival_ms);
  void (*close)(void *writer, bool flush);
  void *opaque;
};

struct slate_player;

/* out is copied. No thread until slate_player_play. NULL on error. */
struct slate_player *slate_player_new(const char *channel, const struct slate_output *out);
/* Starts the thread: it makes the slate (or reuses the last one when the
 * params and layout are the same), opens a writer per rendition of
 * `timeline` and writes packets as their time comes. 0, -EBUSY if already
 * playing, or a uv error when the thread could not start. */
int slate_player_play(struct slate_player *sp, const struct slate_params *params,
                      const struct hls_stream_layout *layout, uint32_t timeline);
/* Stops and joins the thread (it wakes at once); its writers are closed,
 * flushed when flush is set. No-op when not playing. */
void slate_player_halt(struct slate_player *sp, bool flush);
bool slate_player_playing(const struct slate_player *sp);
/* Packets written since the last play (tests, metrics). Any thread. */
uint64_t slate_player_packets(struct slate_player *sp);
/* Halts without flushing, frees. */
void slate_player_free(struct slate_player *sp);

#endif
