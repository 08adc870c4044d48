"""The webhook edge: the ASGI ingress that answers /hooks/ (ingress), the HTTP client to the handlers (upstream),
waking scaled-to-zero handlers (wakeup), what crosses the edge besides the body (headers), and the batched
writer of deliveries (delivery_writer)."""
