// swift-tools-version:6.0
import Foundation
import PackageDescription

let package = Package(
    name: "RecurrentKit",
    // The engine's thread barrier uses Synchronization's atomics (macOS 15 on Apple systems).
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "RecurrentKit", targets: ["RecurrentKit"]),
        .executable(name: "rnnkit", targets: ["rnnkit"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.19"),
        // YAML manifests for `rnnkit verify --manifest`.
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        // `swift package generate-documentation --target RecurrentKit` (the DocC catalog).
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
        // ONNX models are protobuf: Swift generated from spec/onnx/onnx.proto (scripts/generate_onnx_proto.sh).
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    ],
    targets: [
        // libhdf5 through pkg-config (`hdf5`, Debian's libhdf5-dev) and a shim for its macros.
        .systemLibrary(
            name: "CHDF5",
            pkgConfig: "hdf5",
            providers: [.apt(["libhdf5-dev", "pkg-config"])]
        ),
        // zlib through pkg-config (`zlib`, Debian's zlib1g-dev): the zip reader's inflate and CRC-32.
        .systemLibrary(
            name: "CSystemZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev", "pkg-config"])]
        ),
        // Escaping of strings that come from files before they are printed (no dependencies).
        .target(name: "TextSafety"),
        // The only module that calls HDF5 or touches its pointers.
        .target(name: "HDF5", dependencies: ["CHDF5", "TextSafety"]),
        // What a build was compiled for (`-target-cpu`, read from the compiler's macros) and
        // the check that the CPU running it has it; the C part is compiled for the baseline.
        .target(name: "CCPUFeatures"),
        .target(name: "CPUFeatures", dependencies: ["CCPUFeatures"]),
        // Framework-neutral model and the inference engine: pure Swift, no file formats (the
        // C header only tells it the build's vector width, to pick its register tiles).
        .target(name: "RecurrentEngine", dependencies: ["TextSafety", "CCPUFeatures"]),
        // File layouts (PyTorch, Keras), fixtures, and the public facade.
        .target(name: "RecurrentKit", dependencies: ["HDF5", "RecurrentEngine", "TextSafety", "CSystemZlib", "ZIPFoundation",
                                                    .product(name: "Yams", package: "Yams"),
                                                    .product(name: "SwiftProtobuf", package: "swift-protobuf")]),
        // `rnnkit bench`: timed forward passes of a loaded model on random inputs.
        .target(name: "RecurrentBenchmark", dependencies: ["RecurrentKit"]),
        .executableTarget(
            name: "rnnkit",
            dependencies: [
                "RecurrentKit",
                "RecurrentBenchmark",
                "TextSafety",
                "CPUFeatures",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // The fuzz targets' entry points (bytes in, a reader's work done, its refusal out), read
        // through the format registry; outside the library so that no client compiles them, and
        // used by the fuzz targets (Tests/Fuzz) and FuzzRegressionTests.
        .target(name: "FuzzEntryPoints", dependencies: ["RecurrentKit", "HDF5", "RecurrentEngine"],
                path: "Tests/Fuzz/FuzzEntryPoints"),
        // Helpers shared by the test targets: where the committed fixtures are, temporary folders.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "HDF5Tests", dependencies: ["HDF5", "TestSupport"]),
        .testTarget(name: "RecurrentEngineTests", dependencies: ["RecurrentEngine"]),
        .testTarget(name: "CPUFeaturesTests", dependencies: ["CPUFeatures"]),
        .testTarget(name: "RecurrentKitTests", dependencies: ["RecurrentKit", "HDF5", "TestSupport", "TextSafety", "rnnkit",
                                                              "FuzzEntryPoints",
                                                              .product(name: "SwiftProtobuf", package: "swift-protobuf")]),
    ]
)

// libFuzzer targets (Tests/Fuzz, run by scripts/fuzz.sh), only when RECURRENTKIT_FUZZ is set:
// they need `-sanitize=fuzzer`, and they reach the readers through the entry points of the
// FuzzEntryPoints target (FuzzEntry), which use package access: that is why they live in this
// package and not in a separate one.
if ProcessInfo.processInfo.environment["RECURRENTKIT_FUZZ"] != nil {
    package.targets.append(.target(name: "FuzzSupport", path: "Tests/Fuzz/FuzzSupport",
                                   swiftSettings: [.enableExperimentalFeature("Extern")]))
    for name in ["FuzzHDF5Model", "FuzzKerasConfig", "FuzzKerasArchive", "FuzzPyTorchModelConfig", "FuzzFixture",
                 "FuzzTorchFile", "FuzzSafetensors", "FuzzManifest", "FuzzONNX"] {
        // A target's libFuzzer dictionary (`*.dict`, scripts/fuzz.sh passes it) is not a source.
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Tests/Fuzz/\(name)")
        let dictionaries = ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? [])
            .filter { $0.hasSuffix(".dict") }
        package.targets.append(.executableTarget(name: name, dependencies: ["FuzzSupport", "FuzzEntryPoints", "RecurrentKit", "HDF5"],
                                                  path: "Tests/Fuzz/\(name)", exclude: dictionaries))
        package.products.append(.executable(name: name, targets: [name]))
    }
}

// `make test` sets RECURRENTKIT_WARNINGS_AS_ERRORS: then a compiler warning in Sources/ fails
// the build (Swift and C targets there; not the tests' targets, not the dependencies').
// A warning made an error stops its file's compilation, so an incremental build that finds
// nothing else to do still fails on it.
if ProcessInfo.processInfo.environment["RECURRENTKIT_WARNINGS_AS_ERRORS"] != nil {
    let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Sources")
    for target in package.targets where target.path == nil && [.regular, .executable].contains(target.type) {
        let files = (try? FileManager.default.subpathsOfDirectory(atPath: sources.appendingPathComponent(target.name).path)) ?? []
        if files.contains(where: { $0.hasSuffix(".c") }) {
            target.cSettings = (target.cSettings ?? []) + [.unsafeFlags(["-Werror"])]
        } else {
            target.swiftSettings = (target.swiftSettings ?? []) + [.unsafeFlags(["-warnings-as-errors"])]
        }
    }
}
