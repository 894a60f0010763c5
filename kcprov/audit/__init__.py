"""`kcprov audit`: MCP authorization requirements and the seeds' pitfalls, checked on realm files, live realms and
running MCP servers.

- `rules`: the rule registry (stable ids, severity, what a rule rests on, the fix) and the findings;
- `realm_rules`: rules over a realm (a file after `mcp_servers:` expansion, or a live realm read back as one);
- `live`: reading a live realm for the realm rules, plus what only a server knows (version, features);
- `server`: probing a running MCP server;
- `report`: the findings as a table, JSON and SARIF 2.1.0; waivers; the exit code.
"""
