"""Foundation shared by every stage: the error hierarchy, YAML I/O, names, the
repository root, findings, the kustomize wrapper and file writes. Imports
nothing else from `compose`."""
