"""Talk to a live cluster, read-only: `compose doctor` (pre-flight checks of a
cluster against a rendered overlay) and `compose status` (what an applied
overlay is doing).

Modules: `kube` (kubeconfig resolution and a GET-only client), `target` (what a
rendered overlay asks of a cluster), `quantity` (Kubernetes quantities),
`scheduling` (the scheduler's filters on real Node objects and Karpenter
NodePool templates), `doctor` (the checks), `status` (the status screen).

Only `kube.connect()` imports the optional `kubernetes` package.
"""
