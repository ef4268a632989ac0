/* pipeline_decode_int: the media path of pipeline_decode.c, for the
 * control items (pipeline.c); not for other modules. Decode thread only. */
#ifndef GALARELAY_PIPELINE_DECODE_INT_H
#define GALARELAY_PIPELINE_DECODE_INT_H

#include <stdbool.h>

struct pipeline;
struct qitem;

void pipeline__on_packet(struct pipeline *p, struct qitem *it);
void pipeline__receive_frames(struct pipeline *p);
/* Whether the hold may end (the source size known and its fit decided). */
bool pipeline__hold_decided(struct pipeline *p);
/* Begin the timeline and replay the held packets into it. */
void pipeline__start_running(struct pipeline *p);

#endif
