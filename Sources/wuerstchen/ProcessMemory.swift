import Foundation

/// Memory figures of this process from /proc/self/status.
enum ProcessMemory {
    /// Peak resident set size (VmHWM) in bytes, 0 where /proc is missing.
    static func peakResidentBytes() -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let kb = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).compactMap { Double($0) }.first ?? 0
            return kb * 1024
        }
        return 0
    }
}
