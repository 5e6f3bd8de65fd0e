"""components/network-policy: rendered, schema-checked, its flows read back, and
accepted by the real API server (the README's claims, pinned)."""

from __future__ import annotations

import ipaddress
import os

import pytest
import yaml

from compose.core import kustomize
from compose.verify import policy, validate
from conftest_cluster import REPO, apply_rendered, delete_namespace, dry_run

PROD = REPO / "overlays" / "prod-70b"  # prod: the component is on by default

pytestmark = pytest.mark.usefixtures("kubectl")


@pytest.fixture(scope="module")
def rendered():
    return kustomize.build(PROD).docs


def _np(docs):
    (np,) = [d for d in docs if d["kind"] == "NetworkPolicy"]
    return np


def test_component_is_a_component_and_on_by_default_in_prod():
    k = yaml.safe_load((REPO / "components" / "network-policy" / "kustomization.yaml").read_text())
    assert k["kind"] == "Component" and k["resources"] == ["networkpolicy.yaml"]
    assert "../../components/network-policy" in (PROD / "kustomization.yaml").read_text()
    assert "network-policy" not in (REPO / "overlays" / "dev-8b" / "kustomization.yaml").read_text()


def test_rendered_policy_passes_strict_schemas_and_the_policy(rendered):
    np = _np(rendered)
    assert validate.validate_core([np], "prod-70b", kube_versions=("1.30", "1.33")) == []
    assert [f for f in policy.check_policy(rendered, "prod-70b", (PROD / "README.md").read_text())] == []


def test_rendered_flows(rendered):
    np = _np(rendered)
    spec = np["spec"]
    assert np["metadata"]["name"] == "prod-70b-vllm" and np["metadata"]["namespace"] == "prod-70b"
    # This model's pods only.
    assert spec["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "vllm", "app.kubernetes.io/instance": "prod-70b"}}
    dep = next(d for d in rendered if d["kind"] == "Deployment")
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert all(labels[k] == v for k, v in spec["podSelector"]["matchLabels"].items())
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    # Ingress: port 8000 from the gateway and the Prometheus namespace, nothing else.
    (ingress,) = spec["ingress"]
    assert ingress["ports"] == [{"port": 8000, "protocol": "TCP"}]
    (peer,) = ingress["from"]
    assert peer == {"namespaceSelector": {"matchExpressions": [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["gateway", "monitoring"]}]}}
    # Egress: DNS (three peers, port 53 only) and HTTPS outside link-local.
    dns, https = spec["egress"]
    assert sorted((p["protocol"], p["port"]) for p in dns["ports"]) == [("TCP", 53), ("UDP", 53)]
    cidrs = {p["ipBlock"]["cidr"] for p in dns["to"] if "ipBlock" in p}
    assert cidrs == {"169.254.20.10/32", "169.254.169.254/32"}
    (kube_dns,) = [p for p in dns["to"] if "ipBlock" not in p]
    assert kube_dns["podSelector"] == {"matchExpressions": [{"key": "k8s-app", "operator": "In", "values": ["kube-dns"]}]}
    assert https["ports"] == [{"port": 443, "protocol": "TCP"}]
    # HTTPS: any public address; the internal ranges and link-local excepted, exactly.
    assert https["to"] == [
        {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "100.64.0.0/10", "169.254.0.0/16",
                                                      "172.16.0.0/12", "192.168.0.0/16"]}},
        {"ipBlock": {"cidr": "::/0", "except": ["fc00::/7", "fe80::/10"]}}]
    assert len(spec["egress"]) == 2 and all(r.get("to") for r in spec["egress"])


def _https_allows(np, address: str) -> bool:
    """Whether the policy's HTTPS rule admits `address` (ipBlock semantics: in cidr, in no except)."""
    ip = ipaddress.ip_address(address)
    for peer in np["spec"]["egress"][1]["to"]:
        block = peer["ipBlock"]
        net = ipaddress.ip_network(block["cidr"])
        if ip.version == net.version and ip in net and not any(ip in ipaddress.ip_network(e) for e in block["except"]):
            return True
    return False


@pytest.mark.parametrize("address,allowed,what", [
    # Hugging Face (huggingface.co and its CloudFront/Xet CDN): public addresses.
    ("3.160.5.21", True, "a CloudFront address"),
    ("2600:9000:2000::1", True, "a CloudFront IPv6 address"),
    # The cluster: Service ClusterIPs (kubeadm 10.96.0.0/12, EKS 172.20.0.0/16; GKE's
    # default 34.118.224.0/20 is not private: README "The API server"), pod ranges,
    # nodes, private API endpoints.
    ("10.96.0.1", False, "the kubernetes Service on kubeadm/k3s (10.43.0.1 too)"),
    ("10.43.0.1", False, "k3s' kubernetes Service"),
    ("172.20.0.1", False, "EKS' kubernetes Service"),
    ("192.168.1.10", False, "a node on a private network"),
    ("100.64.0.10", False, "a pod on an RFC 6598 range (EKS custom networking)"),
    ("169.254.169.254", False, "cloud metadata over HTTPS"),
    ("fd00::1", False, "an IPv6 ULA pod or Service"),
    ("fe80::1", False, "IPv6 link-local"),
])
def test_https_reaches_the_internet_not_the_cluster(rendered, address, allowed, what):
    assert _https_allows(_np(rendered), address) is allowed, what


def test_the_rule_reports_an_https_egress_into_the_cluster(rendered):
    """network-policy-flows pins the excepts: dropping one is a finding on that peer."""
    docs = yaml.safe_load_all(yaml.safe_dump_all(rendered))
    docs = list(docs)
    _np(docs)["spec"]["egress"][1]["to"][0]["ipBlock"]["except"].remove("172.16.0.0/12")
    _np(docs)["spec"]["egress"].append({"ports": [{"protocol": "TCP", "port": 8080}]})
    findings = policy.check_policy(docs, "prod-70b", (PROD / "README.md").read_text(), rules=["network-policy-flows"])
    assert sorted((f.field, "172.16.0.0/12" in f.problem) for f in findings) == [
        ("spec.egress[1].to[0].ipBlock.except", True), ("spec.egress[2].to", False)], findings


def test_a_matchlabels_peer_would_select_nothing(tmp_path):
    """Why the peers use matchExpressions (README): the overlay's labels transformer adds
    its selector labels to every podSelector.matchLabels of a NetworkPolicy."""
    comp = tmp_path / "np"
    comp.mkdir()
    np = yaml.safe_load((REPO / "components/network-policy/networkpolicy.yaml").read_text())
    np["spec"]["egress"][0]["to"][0]["podSelector"] = {"matchLabels": {"k8s-app": "kube-dns"}}
    (comp / "networkpolicy.yaml").write_text(yaml.safe_dump(np))
    (comp / "kustomization.yaml").write_text(yaml.safe_dump(
        {"apiVersion": "kustomize.config.k8s.io/v1alpha1", "kind": "Component", "resources": ["networkpolicy.yaml"]}))
    top = tmp_path / "top"
    top.mkdir()
    (top / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "namespace": "dev-x",
        "resources": [os.path.relpath(REPO / "base/vllm", top)], "components": ["../np"],
        "labels": [{"pairs": {"app.kubernetes.io/instance": "dev-x"}, "includeSelectors": True}]}))
    got = _np(kustomize.build(top).docs)["spec"]["egress"][0]["to"][0]["podSelector"]
    assert got == {"matchLabels": {"k8s-app": "kube-dns", "app.kubernetes.io/instance": "dev-x"}}


@pytest.mark.cluster
def test_the_api_server_accepts_the_policy(control_plane, cluster_crds, rendered):
    cp = control_plane
    ns = "t-np-prod-70b"
    docs = [{**d, "metadata": {**d["metadata"], **({"name": ns} if d["kind"] == "Namespace" else {"namespace": ns}
                                                    if "namespace" in d["metadata"] else {})}} for d in rendered]
    np = _np(docs)
    try:
        apply_rendered(cp, docs, bind_claims=False)
        live = cp.api.get(f"/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies/{np['metadata']['name']}")
        assert live["spec"]["ingress"] == np["spec"]["ingress"]
        assert live["spec"]["egress"] == np["spec"]["egress"]
        # The API server validates what the schema cannot: an `except` outside its cidr is refused.
        bad = yaml.safe_load(yaml.safe_dump(np))
        bad["metadata"]["name"] = "bad"
        bad["spec"]["egress"][1]["to"][0]["ipBlock"]["except"] = ["10.0.0.0/8", "::/0"]
        got = dry_run(cp, bad, ns)
        assert not got.allowed and got.status == 422 and "except" in got.error, got
    finally:
        delete_namespace(cp, ns)
