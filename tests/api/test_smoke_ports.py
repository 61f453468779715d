"""First API checks: ports and internal numbers under tenancy (PRT-1, NUM-2, ADM-4)."""

from cloudpbx.rights import Level


def test_client_admin_creates_port_and_reads_secret(world):
    """PRT-1: a client administrator creates a port; the secret is sealed and readable."""
    cid = world.client("Acme")
    admin = world.caller(Level.CLIENT_ADMIN, cid)
    port = admin.ok(
        "post",
        f"/api/v1/clients/{cid}/ports",
        201,
        json={"name": "Линия 1", "sip_login": "acme-100"},
    )
    assert port["client_id"] == cid
    assert "sip_secret" not in port
    secret = admin.ok("get", f"/api/v1/clients/{cid}/ports/{port['id']}/secret")
    assert len(secret["sip_secret"]) >= 12
    listing = admin.ok("get", f"/api/v1/clients/{cid}/ports?q=Линия")
    assert listing["total"] == 1


def test_other_tenant_gets_404(world):
    """ADM-4: another client's objects answer 404."""
    a, b = world.client("A"), world.client("B")
    admin_a = world.caller(Level.CLIENT_ADMIN, a)
    admin_b = world.caller(Level.CLIENT_ADMIN, b)
    port = admin_a.ok(
        "post", f"/api/v1/clients/{a}/ports", 201, json={"name": "x", "sip_login": "a-1"}
    )
    assert admin_b.get(f"/api/v1/clients/{a}/ports/{port['id']}").status_code == 404
    assert admin_b.get(f"/api/v1/clients/{b}/ports/{port['id']}").status_code == 404
    assert admin_b.get(f"/api/v1/clients/{a}/ports").status_code == 404
