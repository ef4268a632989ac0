/* api: the operator and page endpoints: /healthz, /metrics (Prometheus
 * text) and /api/v1/channels (JSON). Each subsystem writes its own metric
 * families and channel fields (the table in subsystems.c); this module only
 * assembles them. Loop thread only. */
#ifndef GALARELAY_API_H
#define GALARELAY_API_H

struct app;
struct buf;

/* Registers the routes; call before the lws context is created. */
void api_register_routes(void);
/* The daemon's own families: build, uptime, reloads, open connections. */
void api_metrics(const struct app *app, struct buf *out);

#endif
