/* api: the operator and page endpoints: /healthz, /metrics (Prometheus
 * text) and /api/v1/channels (JSON). Each subsystem writes its own metric
 * lines and channel fields; this module only assembles them. */
#ifndef GALARELAY_API_H
#define GALARELAY_API_H

struct app;

/* Registers the routes; call before the lws context is created. */
void api_register_routes(void);

#endif
