/// Runs a compiled filter the way the kernel does, for one syscall without
/// looking at its arguments: what the launch asks before it loads the filter
/// ahead of `start` (the filter then also sees the few syscalls the child makes
/// while it waits, and must allow each whatever its arguments).
extension CompiledSeccomp {
    /// x86-64 syscalls of the child between READY and execve: waiting for start
    /// (recvmsg, poll, read, clock_nanosleep), reporting (sendto), close_range,
    /// fcntl and execveat for berth-dmz, execve, exit.
    public static let waitingSyscalls: [UInt32] = [0, 3, 7, 35, 44, 45, 46, 47, 59, 60, 72, 230, 231, 271, 322, 436]

    /// AUDIT_ARCH_X86_64.
    static let x86_64: UInt32 = 0xC000_003E

    /// True when the filter allows (or logs) every one of `syscalls` on x86-64
    /// without reading an argument or the instruction pointer; false when any is
    /// refused, depends on them, or the program is not one this evaluator knows.
    public func allowsRegardlessOfArguments(_ syscalls: [UInt32]) -> Bool {
        #if arch(x86_64)
        return syscalls.allSatisfy { nr in
            guard let action = evaluate(nr: nr, arch: Self.x86_64) else { return false }
            return action & 0xffff_0000 == 0x7fff_0000 || action & 0xffff_0000 == 0x7ffc_0000 // ALLOW, LOG
        }
        #else
        return false
        #endif
    }

    /// The filter's return value for `nr` on `arch`; nil when it reads past
    /// seccomp_data.arch (instruction pointer, arguments) or is malformed.
    public func evaluate(nr: UInt32, arch: UInt32) -> UInt32? {
        let count = program.count / 8
        var a: UInt32 = 0, x: UInt32 = 0
        var memory = [UInt32](repeating: 0, count: 16)
        var pc = 0
        var steps = 0
        while pc < count, steps < 100_000 {
            steps += 1
            let base = pc * 8
            let code = UInt16(program[base]) | UInt16(program[base + 1]) << 8
            let jt = Int(program[base + 2]), jf = Int(program[base + 3])
            let k = (0..<4).reduce(UInt32(0)) { $0 | UInt32(program[base + 4 + $1]) << (8 * UInt32($1)) }
            pc += 1
            let operand = code & 0x08 != 0 ? x : k
            switch code & 0x07 {
            case 0x00, 0x01: // LD, LDX (word)
                var value: UInt32
                switch code & 0xe0 {
                case 0x00: value = k                                     // IMM
                case 0x20:                                              // ABS
                    guard code & 0x18 == 0 else { return nil }
                    switch k { case 0: value = nr; case 4: value = arch; default: return nil }
                case 0x60: guard k < 16 else { return nil }; value = memory[Int(k)] // MEM
                case 0x80: value = 64                                    // LEN: sizeof(seccomp_data)
                default: return nil
                }
                if code & 0x07 == 0x00 { a = value } else { x = value }
            case 0x02: guard k < 16 else { return nil }; memory[Int(k)] = a     // ST
            case 0x03: guard k < 16 else { return nil }; memory[Int(k)] = x     // STX
            case 0x04: // ALU
                switch code & 0xf0 {
                case 0x00: a = a &+ operand
                case 0x10: a = a &- operand
                case 0x20: a = a &* operand
                case 0x30: guard operand != 0 else { return nil }; a /= operand
                case 0x40: a |= operand
                case 0x50: a &= operand
                case 0x60: a = operand < 32 ? a << operand : 0
                case 0x70: a = operand < 32 ? a >> operand : 0
                case 0x80: a = 0 &- a
                case 0x90: guard operand != 0 else { return nil }; a %= operand
                case 0xa0: a ^= operand
                default: return nil
                }
            case 0x05: // JMP
                let taken: Bool
                switch code & 0xf0 {
                case 0x00: pc += Int(k); continue
                case 0x10: taken = a == operand
                case 0x20: taken = a > operand
                case 0x30: taken = a >= operand
                case 0x40: taken = a & operand != 0
                default: return nil
                }
                pc += taken ? jt : jf
            case 0x06: return code & 0x18 == 0x10 ? a : k // RET A, RET K
            default: // MISC: TAX, TXA
                if code & 0xf8 == 0x00 { x = a } else if code & 0xf8 == 0x80 { a = x } else { return nil }
            }
        }
        return nil
    }
}
