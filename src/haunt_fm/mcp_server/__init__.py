"""The MCP (Model Context Protocol) edge: haunt-fm's tools for assistants, over stdio and /mcp.

Named `mcp_server`, not `mcp`, so that `import mcp` always means the SDK. Like `web/` and
`cli/`, it only resolves names and calls the stages' services.
"""
