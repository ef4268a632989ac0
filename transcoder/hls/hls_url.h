/* hls_url: the parsers of a "/hls/" request's path and query, as pure
 * functions of their text (no socket, no store), so that they can be
 * fuzzed alone; transcoder/hls/hls_http.c routes with them. */
#ifndef GALARELAY_HLS_URL_H
#define GALARELAY_HLS_URL_H

#include <stdint.h>

/* Room for one path part (a channel, rendition or file name) and its NUL. */
#define HLS_URL_PART 96

/* Splits what follows "/hls/" at '/' into parts: returns their count (1 to
 * 3; a trailing '/' adds none), 0 for "", or 4 when there are more than
 * three, or one is empty or does not fit in HLS_URL_PART. */
int hls_url_split(const char *rest, char parts[3][HLS_URL_PART]);

/* "_HLS_msn=12&_HLS_part=3" (lws may join arguments with ',' instead of
 * '&': both separate): each -1 where absent, -2 where malformed (not a
 * decimal number from 0 to 2^52). Other arguments are ignored. */
void hls_url_query(const char *q, int64_t *msn, int64_t *part);

#endif
