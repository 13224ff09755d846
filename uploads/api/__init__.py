"""The uploads HTTP API: the tus endpoint (``tus``) and direct-to-bucket uploads (``direct``)."""
