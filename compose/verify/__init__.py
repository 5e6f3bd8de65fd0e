"""Stage 3, verify: build with kustomize, validate against schemas and CRDs,
apply the policy, compare with a fresh plan (`compose check`, `compose list`)."""
