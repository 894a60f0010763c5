"""DPoP-bound tokens end to end: `sender_constraint: dpop` on an MCP server, the real Keycloak,
the reference server as its own process.

The service client (private_key_jwt, as an internal agent would be) gets a token
with a DPoP proof; Keycloak binds it (`cnf.jkt`, token_type DPoP) and the server
accepts it only as `Authorization: DPoP` with a fresh proof made with the same
key, for this URL and method. Everything else is a 401 whose
`WWW-Authenticate: DPoP` names the error and the accepted algorithms.
"""

from __future__ import annotations

import httpx
import jwt

from m2m_support import (
    SigningKey,
    apply_realm,
    call_tool,
    client_credentials,
    running_server,
    server_entry,
    token_url,
    www_authenticate,
    ASSERTION_TYPE,
    INITIALIZE,
    MCP_HEADERS,
)


def test_a_dpop_bound_token_calls_a_tool_and_nothing_else_passes(keycloak, realm_name, tmp_path, free_ports):
    port = free_ports(1)[0]
    url = f"http://localhost:{port}/mcp"
    client_key, dpop_key, other_key = SigningKey(), SigningKey(), SigningKey()
    agent = {"client_id": "agent", "auth": "private_key_jwt", "service_account": True, "standard_flow": False,
             "jwks": {"keys": [{**client_key.public, "kid": "agent-1", "alg": "ES256", "use": "sig"}]}}
    spec = {"realm": realm_name, "mcp_servers": [server_entry(port, [agent], sender_constraint="dpop")]}
    _, outputs = apply_realm(keycloak, tmp_path, spec)
    assert "sender_constraint" in outputs[0] and "No changes" in outputs[1]
    assert "MCP_SENDER_CONSTRAINT=dpop" in (tmp_path / "calc.env").read_text()

    endpoint = token_url(keycloak, realm_name)

    def assertion() -> dict[str, str]:
        return {"client_id": "agent", "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": client_key.assertion("agent", endpoint, kid="agent-1")}

    # Keycloak binds the client's tokens: without a proof there is none
    unbound = client_credentials(endpoint, assertion())
    assert unbound.status_code == 400 and "DPoP proof is missing" in unbound.text
    issued = client_credentials(endpoint, assertion(), {"DPoP": dpop_key.proof("POST", endpoint)})
    assert issued.status_code == 200, issued.text
    assert issued.json()["token_type"] == "DPoP"
    token = issued.json()["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["cnf"]["jkt"] == dpop_key.thumbprint and url in claims["aud"]

    with running_server(tmp_path, url) as server:
        metadata = httpx.get(server.resource_metadata_url, timeout=10).json()
        assert metadata["dpop_bound_access_tokens_required"] is True
        assert "ES256" in metadata["dpop_signing_alg_values_supported"]

        result = call_tool(url, lambda method: {"Authorization": f"DPoP {token}",
                                                "DPoP": dpop_key.proof(method, url, token)},
                           "add", {"a": 2, "b": 3})
        assert result["structuredContent"]["result"] == 5

        def refused(headers: dict[str, str], error: str) -> dict[str, str]:
            response = httpx.post(url, json=INITIALIZE, headers={**MCP_HEADERS, **headers}, timeout=10)
            assert response.status_code == 401, response.text
            challenge = www_authenticate(response, "DPoP")
            assert challenge["error"] == error, challenge
            assert "ES256" in challenge["algs"].split()
            return challenge

        refused({"Authorization": f"Bearer {token}"}, "invalid_token")
        refused({"Authorization": f"DPoP {token}"}, "invalid_dpop_proof")  # no proof
        other_url = f"http://localhost:{port}/other"
        refused({"Authorization": f"DPoP {token}", "DPoP": dpop_key.proof("POST", other_url, token)},
                "invalid_dpop_proof")
        refused({"Authorization": f"DPoP {token}", "DPoP": dpop_key.proof("GET", url, token)}, "invalid_dpop_proof")
        once = dpop_key.proof("POST", url, token)
        first = httpx.post(url, json=INITIALIZE, headers={**MCP_HEADERS, "Authorization": f"DPoP {token}", "DPoP": once},
                           timeout=10)
        assert first.status_code == 200, first.text
        challenge = refused({"Authorization": f"DPoP {token}", "DPoP": once}, "invalid_dpop_proof")
        assert "used before" in challenge["error_description"]
        challenge = refused({"Authorization": f"DPoP {token}", "DPoP": other_key.proof("POST", url, token)},
                            "invalid_dpop_proof")
        assert "bound to" in challenge["error_description"]
        # a proof not bound to this token (no ath, or another token's)
        refused({"Authorization": f"DPoP {token}", "DPoP": dpop_key.proof("POST", url)}, "invalid_dpop_proof")
        log = server.log()
    assert token not in log and token.split(".")[2] not in log
