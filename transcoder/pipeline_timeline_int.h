/* pipeline_timeline_int: the timeline of pipeline_timeline.c, for the
 * control items (pipeline.c) and the media path (pipeline_decode.c); not
 * for other modules. Decode thread only. */
#ifndef GALARELAY_PIPELINE_TIMELINE_INT_H
#define GALARELAY_PIPELINE_TIMELINE_INT_H

#include <stdbool.h>

struct pipeline;

void pipeline__clear_hold(struct pipeline *p);
/* 0, or -EINVAL (unusable source), -ENOMEM, -ECANCELED (the loop refused
 * or the pipeline is aborting), a negative AVERROR from an encoder. */
int pipeline__begin_timeline(struct pipeline *p);
void pipeline__end_timeline(struct pipeline *p, bool flush);
void pipeline__fail_timeline(struct pipeline *p);

#endif
