#!/bin/sh
# Regenerates Sources/RecurrentKit/Formats/ONNX/onnx.pb.swift from spec/onnx/onnx.proto (the
# official file of the `onnx` package, kept with the written layouts; its version is in the
# proto's header).
# Only for regeneration: building never needs protoc.
#
# Needs protoc (Debian: apt-get install protobuf-compiler) and protoc-gen-swift of the
# swift-protobuf release Package.swift names (1.39.0), built once outside the repository:
#   git clone https://github.com/apple/swift-protobuf; cd swift-protobuf; git checkout 1.39.0
#   swift build -c release --product protoc-gen-swift
# then: PROTOC_GEN_SWIFT=/path/to/.build/release/protoc-gen-swift scripts/generate_onnx_proto.sh
set -eu
cd "$(dirname "$0")/.."
folder=Sources/RecurrentKit/Formats/ONNX
proto=spec/onnx
plugin=${PROTOC_GEN_SWIFT:-$(command -v protoc-gen-swift || true)}
if [ -z "$plugin" ] || [ ! -x "$plugin" ]; then
    echo "generate_onnx_proto.sh: set PROTOC_GEN_SWIFT to protoc-gen-swift (swift-protobuf 1.39.0)" >&2
    exit 2
fi
# Types are internal to RecurrentKit (Visibility=Internal): the ONNX reader is their only user.
protoc --plugin=protoc-gen-swift="$plugin" --proto_path="$proto" \
    --swift_opt=Visibility=Internal --swift_opt=FileNaming=DropPath --swift_out="$folder" "$proto/onnx.proto"
echo "wrote $folder/onnx.pb.swift"
