// swift-tools-version:6.0
import PackageDescription

// Release-mode flags for the Swift targets. On x86-64 the element-wise Swift loops are compiled
// for AVX2 + FMA (Haswell level: every x86 CPU since 2013-2015) instead of the SSE2 baseline.
// Every Swift target keeps its bounds, overflow and precondition checks: the hot loops are in C
// (CKernels, OpenBLAS), and -Ounchecked measured no faster (bench, same run, 1 thread, AMD EPYC
// Zen 4: pretrain_step 0.396/0.409 s unchecked vs 0.380/0.372 s checked, grpo_iteration
// 1.71/1.93 vs 1.87/1.85 s, euler_sample 1.17/1.26 vs 1.25/1.25 s), while it removed the checks
// that keep a corrupt checkpoint or a bad option from reading or writing out of bounds.
#if arch(x86_64)
let cpuFlags = ["-target-cpu", "haswell"]
#else
let cpuFlags: [String] = []
#endif
let swiftFlags: [SwiftSetting] = [.unsafeFlags(cpuFlags, .when(configuration: .release))]

let package = Package(
    name: "flowtune",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "flowtune", targets: ["flowtune"]),
        .library(name: "FlowTune", targets: ["Tensor", "Imaging", "Shapes", "Dataset", "Model", "Flow", "Rewards", "Analysis", "Training"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // C libraries. OpenBLAS through pkg-config; libpng, libjpeg and zlib behind a few lines
        // of C (ft_image.c) so that libjpeg's longjmp error path never crosses Swift frames.
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .target(name: "CImageIO", path: "Sources/CImageIO",
                cSettings: [.unsafeFlags(["-O2", "-I/usr/include/libpng16"])],
                linkerSettings: [.linkedLibrary("png16"), .linkedLibrary("jpeg"), .linkedLibrary("z")]),

        // External scorers in process groups of their own, stopped with everything they started.
        .target(name: "CProcess", path: "Sources/CProcess", cSettings: [.unsafeFlags(["-O2"])]),

        // OpenMPI, loaded at run time only under mpirun (dlopen): no MPI needed to build or to run alone.
        .target(name: "CMPI", path: "Sources/CMPI", cSettings: [.unsafeFlags(["-O2"])], linkerSettings: [.linkedLibrary("dl")]),

        // GEMM with an AVX-512 micro-kernel, chosen at run time when the CPU has AVX-512
        // (the functions carry their own target attribute; the rest of the file is baseline x86-64);
        // normal draws through glibc's vector log and cos (libmvec, part of glibc on Linux).
        .target(name: "CKernels", path: "Sources/CKernels", cSettings: [.unsafeFlags(["-O3"])],
                linkerSettings: [.linkedLibrary("mvec", .when(platforms: [.linux])), .linkedLibrary("m", .when(platforms: [.linux]))]),

        .target(name: "Tensor", dependencies: ["CBLAS", "CKernels", "CMPI"], swiftSettings: swiftFlags),
        .target(name: "Imaging", dependencies: ["CImageIO", "Tensor"], swiftSettings: swiftFlags),
        .target(name: "Shapes", dependencies: ["Tensor"], swiftSettings: swiftFlags),
        .target(name: "Model", dependencies: ["Tensor", "Shapes"], swiftSettings: swiftFlags),
        // Folders of captioned images (the user's own data): decoding, resizing, the cache, the split.
        .target(name: "Dataset", dependencies: ["Tensor", "Imaging", "Shapes"], swiftSettings: swiftFlags),
        .target(name: "Flow", dependencies: ["Tensor", "Model"], swiftSettings: swiftFlags),
        .target(name: "Rewards", dependencies: ["Tensor", "Imaging", "Shapes", "Model", "CProcess"], swiftSettings: swiftFlags),
        // What a run's numbers say: metrics.jsonl's records, statistics, image features and the
        // Frechet distance, the drift analysis and run summaries, charts, the report page,
        // TensorBoard's event files, the Goodhart fits.
        .target(name: "Analysis", dependencies: ["Tensor", "Imaging", "Shapes"], swiftSettings: swiftFlags),
        .target(name: "Training", dependencies: ["Tensor", "Imaging", "Shapes", "Model", "Flow", "Rewards", "Dataset", "Analysis"], swiftSettings: swiftFlags),
        .executableTarget(name: "flowtune", dependencies: [
            "Tensor", "CProcess", "Imaging", "Shapes", "Model", "Flow", "Rewards", "Analysis", "Training", "Dataset",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: swiftFlags),

        // Test folders mirror the targets; TestSupport holds what several of them share (tiny
        // models and runs, the command-line tool's path, test image folders).
        .target(name: "TestSupport", dependencies: ["Tensor", "Imaging", "Shapes", "Model", "Flow", "Dataset", "Analysis", "Training"],
                path: "Tests/TestSupport"),
        .testTarget(name: "TensorTests", dependencies: ["Tensor", "CKernels", "CBLAS"]),
        .testTarget(name: "ImagingTests", dependencies: ["Imaging", "Tensor"]),
        .testTarget(name: "ShapesTests", dependencies: ["Shapes", "Tensor", "Imaging"]),
        .testTarget(name: "DatasetTests", dependencies: ["Dataset", "Imaging", "Shapes", "Tensor", "TestSupport"]),
        .testTarget(name: "ModelTests", dependencies: ["Model", "Tensor", "Shapes", "Flow", "Imaging", "Training", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "FlowTests", dependencies: ["Flow", "Model", "Tensor", "Shapes", "TestSupport"]),
        .testTarget(name: "RewardsTests", dependencies: ["Rewards", "Imaging", "Tensor", "Shapes", "Model", "Training"]),
        .testTarget(name: "AnalysisTests", dependencies: ["Analysis", "Tensor", "Imaging", "Shapes"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Analysis", "Model", "Flow", "Tensor", "Shapes", "Rewards", "Imaging", "Dataset", "CImageIO", "CProcess", "TestSupport"]),
        // the command-line tool as a user runs it: bad input, faults, signals, MPI, sweeps
        .testTarget(name: "CLITests", dependencies: ["Training", "Analysis", "Model", "Flow", "Tensor", "Shapes", "Rewards", "Imaging", "Dataset", "CImageIO", "CProcess", "TestSupport"]),
    ],
    swiftLanguageModes: [.v5]
)
