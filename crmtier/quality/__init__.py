"""Great Expectations gates (raw, staging, marts) and the drift gate, driven by expectations/gates.yml."""
