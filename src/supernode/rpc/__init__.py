"""Thin gRPC servicers: validate, convert, delegate, map errors to status codes."""
