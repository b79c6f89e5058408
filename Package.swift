// swift-tools-version:6.0
// Würstchen v2 text-to-image service on CPUs. Targets and their allowed imports: docs in README.md
// and the project's ARCHITECTURE notes (arrows only point down).
import PackageDescription

// Numeric kernels only: bounds are checked by the callers, the inner loops must vectorise.
// Swift 5 language mode: kernels hand raw pointers to parallel loops, which strict Sendable
// checking cannot express; the ops are synchronous, so no pointer outlives its call.
// x86-64: AVX2 + FMA (x86-64-v3, every server CPU since 2013), without which exp/erf run 2.6x slower.
#if arch(x86_64)
let cpuFlags = ["-target-cpu", "haswell"]
#else
let cpuFlags: [String] = []
#endif
let optimise: [SwiftSetting] = [
    .unsafeFlags(["-Ounchecked", "-wmo"] + cpuFlags, .when(configuration: .release)),
    .swiftLanguageMode(.v5),
]

let package = Package(
    name: "wuerstchen",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "wuerstchen", targets: ["wuerstchen"]),
        .library(name: "JSON", targets: ["JSON"]),
        .library(name: "Tensor", targets: ["Tensor"]),
        .library(name: "SafeTensors", targets: ["SafeTensors"]),
        .library(name: "CLIP", targets: ["CLIP"]),
        .library(name: "Wuerstchen", targets: ["Wuerstchen"]),
        .library(name: "Imaging", targets: ["Imaging"]),
        .library(name: "HTTP1", targets: ["HTTP1"]),
        .library(name: "Serving", targets: ["Serving"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]),
        // oneDNN (Debian's libdnnl-dev has no .pc file: the module map links libdnnl and libgomp itself).
        .systemLibrary(name: "CDNNL", path: "Sources/CDNNL", providers: [.apt(["libdnnl-dev"])]),
        .systemLibrary(
            name: "COpenSSL", path: "Sources/COpenSSL", pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]),
        // AVX-512 kernels in C, chosen at run time (Swift builds for x86-64-v3, see cpuFlags); plain C
        // elsewhere: it builds on any x86-64 and is empty on other architectures.
        .target(name: "CKernels"),
        // The one JSON reader and writer (strict: depth limit, duplicate keys and invalid UTF-8 rejected,
        // numbers kept as text), with a Decoder for Codable configs: safetensors headers, model configs,
        // tokenizer files, the HTTP bodies and error bodies, the server configuration. No dependencies.
        .target(name: "JSON"),
        .target(name: "Tensor", dependencies: ["CBLAS", "CDNNL", "CKernels"], swiftSettings: optimise),
        // <sys/epoll.h> and <sys/eventfd.h> behind C wrappers (the Glibc module exports neither, and
        // `struct epoll_event` is packed on x86-64, which Swift cannot lay out); Linux only.
        .target(name: "CEpoll"),
        // JSON for its error bodies only.
        .target(name: "HTTP1", dependencies: ["COpenSSL", "CEpoll", "JSON"]),
        // libpng behind a small C shim that catches libpng's longjmp errors (libpng-dev, zlib1g-dev).
        .target(name: "CPNG", linkerSettings: [.linkedLibrary("png")]),
        // libjpeg-turbo behind a C shim that turns libjpeg's fatal errors into a longjmp it catches
        // (libjpeg62-turbo-dev).
        .target(name: "CJPEG", linkerSettings: [.linkedLibrary("jpeg")]),
        // libwebp's encoder and decoder and libwebpmux for the EXIF/XMP chunks (libwebp-dev).
        .target(name: "CWebP", linkerSettings: [.linkedLibrary("webp"), .linkedLibrary("webpmux")]),
        .target(name: "Imaging", dependencies: ["CPNG", "CJPEG", "CWebP"]),
        .target(name: "SafeTensors", dependencies: ["Tensor", "JSON"]),
        .target(
            name: "CLIP", dependencies: ["Tensor", "SafeTensors", "JSON"],
            resources: [.copy("Resources")]),
        // Resources/DemoModel: the trained demo pipeline (scripts/demo_model/train.py), diffusers layout.
        .target(
            name: "Wuerstchen", dependencies: ["Tensor", "SafeTensors", "CLIP", "JSON"],
            resources: [.copy("Resources")]),
        .target(
            name: "Serving",
            dependencies: [
                "HTTP1", "CLIP", "Wuerstchen", "Imaging", "Tensor", "JSON", "COpenSSL",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]),
        .executableTarget(
            name: "wuerstchen",
            dependencies: [
                "Tensor", "SafeTensors", "CLIP", "Wuerstchen", "Imaging", "Serving", "JSON",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        // What the test targets share (fixtures, expectClose, SplitMix, the raw socket client, eventually,
        // the executable lookup); in no product, so never linked into the service.
        .target(
            name: "TestSupport", dependencies: ["Tensor", "SafeTensors", "HTTP1", "JSON"], path: "Tests/TestSupport"),
        .testTarget(name: "JSONTests", dependencies: ["JSON"]),
        .testTarget(
            name: "TensorTests", dependencies: ["Tensor", "SafeTensors", "TestSupport"],
            resources: [.copy("Fixtures")], swiftSettings: [.swiftLanguageMode(.v5)]),
        .testTarget(
            name: "CLIPTests", dependencies: ["CLIP", "Tensor", "SafeTensors", "TestSupport"],
            resources: [.copy("Fixtures")]),
        .testTarget(
            name: "WuerstchenTests", dependencies: ["Wuerstchen", "CLIP", "Tensor", "SafeTensors", "TestSupport"],
            resources: [.copy("Fixtures")]),
        .testTarget(name: "ImagingTests", dependencies: ["Imaging"]),
        .testTarget(name: "HTTP1Tests", dependencies: ["HTTP1", "TestSupport"]),
        .testTarget(name: "ServingTests", dependencies: ["Serving", "HTTP1", "Wuerstchen", "Imaging", "Tensor", "JSON", "TestSupport"]),
        // Runs the built `wuerstchen` executable (the test script builds every product first).
        .testTarget(name: "CLITests", dependencies: ["Imaging", "SafeTensors", "Tensor", "TestSupport"]),
        .testTarget(
            name: "SafeTensorsTests", dependencies: ["SafeTensors", "Tensor", "JSON", "TestSupport"]),
    ]
)
