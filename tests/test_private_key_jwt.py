"""Machine-to-machine clients of an MCP server without shared secrets, against the real Keycloak.

The MCP "OAuth client credentials" extension, shown both ways on the reference
server (its own process): a service client with a secret, and one with
`auth: private_key_jwt` whose key pair comes from `kcprov dev keypair` (public
JWK Set in the realm file, private key in a 0600 file). Each gets a token with
the client credentials grant and calls a tool; an assertion signed with another
key is refused by Keycloak. The private key appears in no output.
"""

from __future__ import annotations

import json
import stat

from jwcrypto import jwk

from kindcontract import cli_env, kcprov, ok
from m2m_support import (
    ASSERTION_TYPE,
    SigningKey,
    apply_realm,
    call_tool,
    client_credentials,
    running_server,
    server_entry,
    token_url,
)

SECRET = "svc-secret-5f0c2a91d7"


def test_service_clients_with_a_secret_and_with_private_key_jwt_call_a_tool(keycloak, realm_name, tmp_path,
                                                                           free_ports):
    env = cli_env(keycloak, SVC_SECRET=SECRET)
    made = ok(kcprov("dev", "keypair", "--out", str(tmp_path / "keys"), "--name", "svc", env=env, cwd=tmp_path))
    key_file = tmp_path / "keys" / "svc.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    private = jwk.JWK.from_pem(key_file.read_bytes())
    private_d = json.loads(private.export_private())["d"]
    jwks = json.loads(made.stdout)
    assert [set(k) for k in jwks["keys"]] == [{"kty", "crv", "x", "y", "kid", "alg", "use"}]
    kid = jwks["keys"][0]["kid"]

    port = free_ports(1)[0]
    url = f"http://localhost:{port}/mcp"
    clients = [
        {"client_id": "svc-secret", "secret": "{{ env.SVC_SECRET }}", "service_account": True, "standard_flow": False},
        {"client_id": "svc-jwt", "auth": "private_key_jwt", "jwks": jwks, "service_account": True,
         "standard_flow": False},
    ]
    _, outputs = apply_realm(keycloak, tmp_path, {"realm": realm_name, "mcp_servers": [server_entry(port, clients)]},
                             SVC_SECRET=SECRET)
    assert 'auth' in outputs[0] and "private_key_jwt" in outputs[0]
    assert "No changes" in outputs[1]
    exported = ok(kcprov("export", "--realm", realm_name, env=env, cwd=tmp_path)).stdout
    assert "auth: private_key_jwt" in exported and kid in exported

    endpoint = token_url(keycloak, realm_name)
    with running_server(tmp_path, url) as server:
        by_secret = client_credentials(endpoint, {"client_id": "svc-secret", "client_secret": SECRET})
        assert by_secret.status_code == 200, by_secret.text
        signer = SigningKey(key=private)

        def assertion(key: SigningKey) -> dict[str, str]:
            return {"client_id": "svc-jwt", "client_assertion_type": ASSERTION_TYPE,
                    "client_assertion": key.assertion("svc-jwt", endpoint, kid=kid)}

        by_key = client_credentials(endpoint, assertion(signer))
        assert by_key.status_code == 200, by_key.text
        for response in (by_secret, by_key):
            token = response.json()["access_token"]
            result = call_tool(url, lambda method, t=token: {"Authorization": f"Bearer {t}"}, "add", {"a": 1, "b": 2})
            assert result["structuredContent"]["result"] == 3

        wrong = client_credentials(endpoint, assertion(SigningKey()))
        assert wrong.status_code in (400, 401) and wrong.json()["error"] == "invalid_client", wrong.text
        log = server.log()

    pem = key_file.read_text()
    body = "".join(pem.splitlines()[1:-1])
    for text in (made.stdout, made.stderr, *outputs, exported, log):
        assert private_d not in text and body not in text and "PRIVATE KEY" not in text
