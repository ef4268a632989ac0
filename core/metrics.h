/* metrics: the one writer of the Prometheus text format (/metrics).
 *
 * A module describes its metrics as a table, one row per family: name,
 * type, help line, and where the value comes from (a field of the
 * module's stats struct, or a getter for a value that is computed). One
 * function writes a whole table for one object; a family with labels
 * (per channel, per reason) is a row too, written by metrics_head() and
 * one metrics_value() per label set. So every family gets its HELP and
 * TYPE lines the same way, and a value is formatted the same way
 * wherever it comes from.
 *
 *   struct webroot_stats st;
 *   static const struct metric rows[] = {
 *       METRIC_FIELD("galarelay_webroot_reads_total", METRIC_COUNTER, "Static files read.",
 *                    struct webroot_stats, reads),
 *   };
 *   metrics_write(out, rows, METRICS_COUNT(rows), &st);
 *
 * The tables are static and const; the objects they read belong to their
 * module. Loop thread only (it reads loop-owned state), but nothing here
 * keeps state of its own. */
#ifndef GALARELAY_METRICS_H
#define GALARELAY_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;

enum metric_type {
  METRIC_COUNTER,
  METRIC_GAUGE,
  METRIC_HISTOGRAM, /* its _bucket, _sum and _count samples are rows of their own, without a head */
};

/* How a row's value is read from the object it is written for. */
enum metric_source {
  METRIC_SRC_INT,    /* int field */
  METRIC_SRC_UINT,   /* unsigned int field */
  METRIC_SRC_ULONG,  /* unsigned long field (uint64_t, size_t on LP64) */
  METRIC_SRC_ULLONG, /* unsigned long long field */
  METRIC_SRC_DOUBLE, /* double field */
  METRIC_SRC_BOOL,   /* bool field: 0 or 1 */
  METRIC_SRC_GETTER, /* get(obj) */
  METRIC_SRC_NONE,   /* a labelled family: the caller writes its values */
};

struct metric {
  const char *name;
  enum metric_type type;
  const char *help;
  enum metric_source source;
  size_t offset;                  /* of the field, for the METRIC_SRC_* field kinds */
  double (*get)(const void *obj); /* METRIC_SRC_GETTER */
};

/* The source kind of a struct field, from its type. */
#define METRIC_SOURCE_OF(expr)                                                                                         \
  _Generic((expr), int                                                                                                 \
           : METRIC_SRC_INT, unsigned int                                                                              \
           : METRIC_SRC_UINT, unsigned long                                                                            \
           : METRIC_SRC_ULONG, unsigned long long                                                                      \
           : METRIC_SRC_ULLONG, double                                                                                 \
           : METRIC_SRC_DOUBLE, bool                                                                                   \
           : METRIC_SRC_BOOL)

/* A row read from FIELD of a STRUCT. */
#define METRIC_FIELD(NAME, TYPE, HELP, STRUCT, FIELD)                                                                  \
  { (NAME), (TYPE), (HELP), METRIC_SOURCE_OF(((STRUCT *)0)->FIELD), offsetof(STRUCT, FIELD), NULL }
/* A row whose value GET(obj) computes. */
#define METRIC_GETTER(NAME, TYPE, HELP, GET)                                                                           \
  { (NAME), (TYPE), (HELP), METRIC_SRC_GETTER, 0, (GET) }
/* A row with labels: metrics_head() then one metrics_value() per label set. */
#define METRIC_FAMILY(NAME, TYPE, HELP)                                                                                \
  { (NAME), (TYPE), (HELP), METRIC_SRC_NONE, 0, NULL }

#define METRICS_COUNT(rows) (sizeof(rows) / sizeof((rows)[0]))

/* "# HELP name help" and "# TYPE name type"; a row whose help is NULL gets
 * the TYPE line alone (a few HLS families have no help text yet). */
void metrics_head(struct buf *out, const struct metric *m);
/* One sample: "name{labels} value". labels is NULL or "" for none, else
 * the inside of the braces, already quoted (`channel="gala"`). Integral
 * values are written as integers; others with the fewest digits that
 * read back to the same double. */
void metrics_value(struct buf *out, const struct metric *m, const char *labels, double value);
/* The same for a count, written exactly (a double holds 53 bits). */
void metrics_count(struct buf *out, const struct metric *m, const char *labels, uint64_t value);
/* One sample of row m read from obj, with labels (as for metrics_value):
 * a family per channel is metrics_head(), then one metrics_sample() per
 * channel's stats struct. */
void metrics_sample(struct buf *out, const struct metric *m, const char *labels, const void *obj);
/* The value of row m for obj (0 for a METRIC_FAMILY row). */
double metrics_read(const struct metric *m, const void *obj);
/* Every row of the table for obj: HELP, TYPE and the unlabelled value.
 * Rows made with METRIC_FAMILY are skipped (they have no single value). */
void metrics_write(struct buf *out, const struct metric *rows, size_t n, const void *obj);

#endif
