/* api: the operator and page endpoints: /healthz, /metrics (Prometheus
 * text) and /api/v1/channels (JSON). Each subsystem writes its own metric
 * families and channel fields (the table in subsystems.c, handed over as
 * struct api_sources); this module only assembles them. Loop thread only. */
#ifndef GALARELAY_API_H
#define GALARELAY_API_H

struct app;
struct buf;
struct json_t;

/* Where the answers come from: every part's families and channel fields
 * (subsystems.c passes its table's walkers, so this module knows no part). */
struct api_sources {
  void (*metrics)(const struct app *app, struct buf *out);
  void (*channel_fields)(const struct app *app, const char *channel, struct json_t *obj);
};

/* Registers the routes; call before the lws context is created. sources
 * must outlive the routes. */
void api_register_routes(const struct api_sources *sources);
/* The daemon's own families: build, uptime, reloads, open connections. */
void api_metrics(const struct app *app, struct buf *out);

#endif
