// Loads the TypeScript code `buf generate` made from protos/ (with buf.gen.yaml's protoc-gen-es entry):
// decodes a message Python encoded, encodes messages for Python to compare, lists the services' methods.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { UrlMetaSchema } from "./gen/dandelion/common/v1/common_pb";
import { DownloadPiecesRequestSchema, PeerService } from "./gen/dandelion/peer/v1/peer_pb";
import { SchedulerService } from "./gen/dandelion/scheduler/v1/scheduler_pb";

const fromPython = fromBinary(DownloadPiecesRequestSchema, Buffer.from(process.argv[2], "hex"));
const request = create(DownloadPiecesRequestSchema, { taskId: "t1", pieceNumbers: [0, 2, 5], requesterPeerId: "p1" });
const meta = create(UrlMetaSchema, {
  url: "https://h/x",
  digest: "sha256:00",
  filteredQueryParams: ["sig"],
  range: "0-9",
});
const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex");
console.log(
  JSON.stringify({
    parsed: {
      taskId: fromPython.taskId,
      pieceNumbers: fromPython.pieceNumbers,
      requesterPeerId: fromPython.requesterPeerId,
    },
    request: hex(toBinary(DownloadPiecesRequestSchema, request)),
    urlMeta: hex(toBinary(UrlMetaSchema, meta)),
    peerMethods: Object.keys(PeerService.method),
    schedulerMethods: Object.keys(SchedulerService.method),
    downloadPiecesKind: PeerService.method.downloadPieces.methodKind,
  }),
);
