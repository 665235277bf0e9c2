"""The tool groups; :func:`mcp_server.server.build_server` registers each one explicitly."""
