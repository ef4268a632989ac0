/* metrics: see metrics.h. The format is Prometheus text exposition 0.0.4:
 * a family's HELP and TYPE lines, then its samples, one per line. Values
 * read from integer fields are written as integers without passing
 * through a double, so a counter is exact however far it has run. */
#include "core/metrics.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"

static const char *type_name(enum metric_type t) {
  switch (t) {
  case METRIC_COUNTER: return "counter";
  case METRIC_HISTOGRAM: return "histogram";
  case METRIC_GAUGE: break;
  }
  return "gauge";
}

void metrics_head(struct buf *out, const struct metric *m) {
  if (m->help)
    buf_printf(out, "# HELP %s %s\n", m->name, m->help);
  buf_printf(out, "# TYPE %s %s\n", m->name, type_name(m->type));
}

/* "name" or "name{labels}", then a space. */
static void sample_start(struct buf *out, const struct metric *m, const char *labels) {
  if (labels && labels[0])
    buf_printf(out, "%s{%s} ", m->name, labels);
  else
    buf_printf(out, "%s ", m->name);
}

void metrics_value(struct buf *out, const struct metric *m, const char *labels, double value) {
  sample_start(out, m, labels);
  if (isnan(value)) {
    buf_puts(out, "NaN\n");
  } else if (isinf(value)) {
    buf_puts(out, value > 0 ? "+Inf\n" : "-Inf\n");
  } else if (value == floor(value) && fabs(value) < 9007199254740992.0) {
    buf_printf(out, "%lld\n", (long long)value); /* integral: no exponent, no ".0" */
  } else {
    /* The fewest digits that read back to the same double: 812.345, not
     * 812.34500000000003. */
    char text[32];
    snprintf(text, sizeof text, "%.15g", value);
    if (strtod(text, NULL) != value)
      snprintf(text, sizeof text, "%.17g", value);
    buf_printf(out, "%s\n", text);
  }
}

void metrics_count(struct buf *out, const struct metric *m, const char *labels, uint64_t value) {
  sample_start(out, m, labels);
  buf_printf(out, "%" PRIu64 "\n", value);
}

double metrics_read(const struct metric *m, const void *obj) {
  if (m->source == METRIC_SRC_GETTER)
    return m->get(obj);
  if (m->source == METRIC_SRC_NONE || !obj)
    return 0; /* a family has no single value; and no offset from NULL */
  const char *field = (const char *)obj + m->offset;
  switch (m->source) {
  case METRIC_SRC_INT: return *(const int *)field;
  case METRIC_SRC_UINT: return *(const unsigned int *)field;
  case METRIC_SRC_ULONG: return (double)*(const unsigned long *)field;
  case METRIC_SRC_ULLONG: return (double)*(const unsigned long long *)field;
  case METRIC_SRC_DOUBLE: return *(const double *)field;
  case METRIC_SRC_BOOL: return *(const bool *)field ? 1 : 0;
  case METRIC_SRC_GETTER: return m->get(obj);
  case METRIC_SRC_NONE: break;
  }
  return 0;
}

/* Unsigned fields are written exactly; the rest through a double. */
void metrics_sample(struct buf *out, const struct metric *m, const char *labels, const void *obj) {
  const char *field = obj ? (const char *)obj + m->offset : NULL;
  if (field && m->source == METRIC_SRC_ULONG)
    metrics_count(out, m, labels, *(const unsigned long *)field);
  else if (field && m->source == METRIC_SRC_ULLONG)
    metrics_count(out, m, labels, *(const unsigned long long *)field);
  else
    metrics_value(out, m, labels, metrics_read(m, obj));
}

void metrics_write(struct buf *out, const struct metric *rows, size_t n, const void *obj) {
  for (size_t i = 0; i < n; i++) {
    if (rows[i].source == METRIC_SRC_NONE)
      continue;
    metrics_head(out, &rows[i]);
    metrics_sample(out, &rows[i], NULL, obj);
  }
}
