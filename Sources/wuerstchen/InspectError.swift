/// A file `inspect` cannot read parameters from (printed as `Error: ...`, exit status 1, without the usage).
struct InspectError: Error, CustomStringConvertible {
    let description: String
}
