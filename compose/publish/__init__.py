"""Stage 4, publish: Argo CD and Flux objects, the monitoring component and
dashboard, rendered manifests, and `regen` that replays every generator."""
