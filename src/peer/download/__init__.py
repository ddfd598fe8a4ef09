"""One task's download, in parts: its phases (`phase`), the SyncPieces stream and other supernode calls, the only
code here that touches protobuf (`link`), one stream's session of assignments and fetches (`session`), reading the
origin into pieces (`origin_read`) and the check of the whole content against its digest (`verify`); the
`peer.conductor.Conductor` puts them together."""
