"""Stage 2, compose: turn a plan into an overlay (options, patches, alerts,
kustomization, README, compose-plan.yaml) and write it."""
