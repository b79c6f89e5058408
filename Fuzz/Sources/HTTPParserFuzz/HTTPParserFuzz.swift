import FuzzSupport
import HTTP1

/// libFuzzer harness for `HTTPParser` (incremental). Properties for every input:
/// - the events are `(head body* end)*` then at most one `error`, nothing after an error, never an empty
///   body part, and the input concludes (a complete request or an error) once `finish()` is called;
/// - splitting the input gives the same events (bodies merged) and the same error (status and code) as
///   parsing it whole: at one or two points, in pieces of 1-40 bytes, or byte by byte (up to 512 bytes),
///   one of these per input, drawn from its hash.
/// Small limits, so that every limit is within reach of short inputs.
@main
struct HTTPParserFuzz {
    static func main() {
        runFuzzer { data, size in
            check(bytes(data, size))
            return 0
        }
    }
}

let limits: HTTPLimits = {
    var l = HTTPLimits()
    l.maxRequestLineBytes = 256
    l.maxHeaderBytes = 512
    l.maxHeaderCount = 8
    l.maxBodyBytes = 1024
    l.maxChunkLineBytes = 64
    return l
}()

/// Events with consecutive body parts merged and errors reduced to status and code (messages may
/// describe what was seen so far).
func normalized(_ events: [HTTPParserEvent]) -> [HTTPParserEvent] {
    var out: [HTTPParserEvent] = []
    for e in events {
        switch e {
        case .body(let b):
            if case .body(let a)? = out.last { out[out.count - 1] = .body(a + b) } else { out.append(e) }
        case .error(let error):
            out.append(.error(HTTPError(status: error.status, code: error.code, message: "")))
        default:
            out.append(e)
        }
    }
    return out
}

/// Feeds `input` in the pieces that start at `cuts` (sorted), then ends the input.
func parse(_ input: [UInt8], cuts: [Int]) -> [HTTPParserEvent] {
    var parser = HTTPParser(limits: limits)
    var events: [HTTPParserEvent] = []
    var from = 0
    for cut in cuts + [input.count] where cut >= from {
        events += parser.feed(Array(input[from..<cut]))
        from = cut
    }
    if let e = parser.finish() { events.append(e) }
    return events
}

func check(_ input: [UInt8]) {
    let raw = parse(input, cuts: [])
    var inMessage = false
    for (k, e) in raw.enumerated() {
        switch e {
        case .head: precondition(!inMessage, "head inside a message: \(raw)")
            inMessage = true
        case .body(let b): precondition(inMessage && !b.isEmpty, "body outside a message or empty: \(raw)")
        case .end: precondition(inMessage, "end outside a message: \(raw)")
            inMessage = false
        case .error: precondition(k == raw.count - 1, "events after an error: \(raw)")
        }
    }
    if !input.isEmpty {
        switch raw.last {
        case .end?, .error?: break
        default: fatalError("input of \(input.count) bytes did not conclude: \(raw)")
        }
    }
    let whole = normalized(raw)
    // One way of splitting per input, drawn from its hash (over millions of inputs every way is tried
    // on every kind of input; all of them on each would cost 5-10x the executions).
    var rng = SplitMix64(seed: fnv1a(input))
    var cuts: [Int] = []
    switch rng.next() % 4 {
    case 0 where input.count > 1:
        cuts = [Int(rng.next() % UInt64(input.count + 1))]
    case 1 where input.count > 1:
        let a = Int(rng.next() % UInt64(input.count + 1)), b = Int(rng.next() % UInt64(input.count + 1))
        cuts = [min(a, b), max(a, b)]
    case 2 where input.count <= 512:
        cuts = Array(0..<input.count)
    default:
        var at = 0
        while true {
            at += 1 + Int(rng.next() % 40)
            guard at < input.count else { break }
            cuts.append(at)
        }
    }
    let splits = [cuts]
    for cuts in splits {
        let got = normalized(parse(input, cuts: cuts))
        precondition(got == whole, "split at \(cuts.prefix(8))... gives \(got), whole gives \(whole)")
    }
}
