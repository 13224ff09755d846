"""A WSGI app for tests/uploads/test_wsgi_body.py: reads each body through uploads.wsgi_body.

Answers "<direct|fallback> <bytes read> <sha256>"; ``X-Buffer`` sets the readinto buffer size.
"""

import hashlib

from uploads.wsgi_body import socket_body


def app(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = socket_body(environ, length)
    digest, total = hashlib.sha256(), 0
    if body is None:
        data = environ["wsgi.input"].read(length)
        digest.update(data)
        total = len(data)
    else:
        buffer = memoryview(bytearray(int(environ.get("HTTP_X_BUFFER", "65536"))))
        while n := body.readinto(buffer):
            digest.update(buffer[:n])
            total += n
    answer = f"{'fallback' if body is None else 'direct'} {total} {digest.hexdigest()}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(answer)))])
    return [answer]
