/* pipeline_rung_int: what pipeline_rung.c shares with the other pipeline
 * files (not for other modules): the bounded queue of packets, frames and
 * control items, and the rung's encoder and its thread. It calls nothing
 * of theirs. */
#ifndef GALARELAY_PIPELINE_RUNG_INT_H
#define GALARELAY_PIPELINE_RUNG_INT_H

#include "transcoder/pipeline_int.h"

/* 0, or -ENOMEM / a uv error. */
int pipeline__q_init(struct queue *q, int bound);
void pipeline__qitem_clear(struct qitem *it);
void pipeline__q_destroy(struct queue *q);
/* Data items respect the bound, control items may also use the reserve;
 * past it, block waits, else -EAGAIN (full); -EPIPE once closed. On
 * success the queue owns the item's references; on failure the caller
 * keeps them. */
int pipeline__q_push(struct queue *q, struct qitem *it, bool block);
bool pipeline__q_pop(struct queue *q, struct qitem *out); /* false once closed */
int pipeline__q_depth(struct queue *q);
void pipeline__q_close(struct queue *q);
int pipeline__cpu_count(void);
/* 0, or a negative AVERROR / -ENOMEM (logged). */
int pipeline__rung_open_encoder(struct pipeline *p, struct rung *r);
void pipeline__rung_main(void *arg); /* the rung's thread */
void pipeline__rung_free(struct rung *r);

#endif
