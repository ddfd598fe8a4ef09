"""The CDN seed: fetches content from its origin into the disk cache and serves it."""
