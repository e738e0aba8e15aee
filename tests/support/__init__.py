# Test support for Portico's integration tests (tests/integration): fake upstreams and process helpers.
