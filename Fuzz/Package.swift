// swift-tools-version:6.0
// libFuzzer harnesses for the parsers and validators that take untrusted bytes (issue 12's campaign).
// A package of its own that depends on the main one by path, so the main build and its CI stay as they
// are. Built and run by `scripts/ci/fuzz.sh`, which instruments every target (`-sanitize=fuzzer,address`,
// `-enable-testing` for the internal parsers, lld to link). Each harness has its own `main`
// (`FuzzSupport.runFuzzer`), which hands the arguments to libFuzzer's `LLVMFuzzerRunDriver`.
import PackageDescription

let package = Package(
    name: "WuerstchenFuzz",
    dependencies: [.package(name: "wuerstchen", path: "..")],
    targets: [
        // The declaration of libFuzzer's `LLVMFuzzerRunDriver` (swiftc links the runtime with -sanitize=fuzzer).
        .target(name: "CFuzzerDriver"),
        .target(name: "FuzzSupport", dependencies: ["CFuzzerDriver"]),
        .executableTarget(
            name: "HTTPParserFuzz",
            dependencies: ["FuzzSupport", .product(name: "HTTP1", package: "wuerstchen")]),
        .executableTarget(
            name: "JSONFuzz",
            dependencies: ["FuzzSupport", .product(name: "JSON", package: "wuerstchen")]),
        .executableTarget(
            name: "RequestFuzz",
            dependencies: [
                "FuzzSupport", .product(name: "Serving", package: "wuerstchen"),
                .product(name: "Wuerstchen", package: "wuerstchen"), .product(name: "JSON", package: "wuerstchen"),
            ]),
        .executableTarget(
            name: "SafeTensorsHeaderFuzz",
            dependencies: ["FuzzSupport", .product(name: "SafeTensors", package: "wuerstchen")]),
        .executableTarget(
            name: "TokenizerFuzz",
            dependencies: ["FuzzSupport", .product(name: "CLIP", package: "wuerstchen")]),
    ]
)
