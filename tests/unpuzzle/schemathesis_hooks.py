"""Loaded by schemathesis (SCHEMATHESIS_HOOKS) in the API fuzz test and bench/api_fuzz.py: tus bodies
(application/offset+octet-stream) are raw bytes, sent the way octet-stream bodies are."""

import schemathesis

schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")
