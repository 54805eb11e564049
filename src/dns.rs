//! A small synchronous DNS client: MX, A, AAAA and CNAME lookups over UDP with TCP fallback.
