import Testing
@testable import BerthImage

@Suite("image references and digests")
struct ReferenceTests {
    @Test("docker's normalization", arguments: [
        ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
        ("me/app", "docker.io/me/app:latest", "me/app:latest"),
        ("localhost:5000/app:v1", "localhost:5000/app:v1", "localhost:5000/app:v1"),
        ("127.0.0.1:5000/a/b/c", "127.0.0.1:5000/a/b/c:latest", "127.0.0.1:5000/a/b/c:latest"),
        ("index.docker.io/library/alpine", "docker.io/library/alpine:latest", "alpine:latest"),
        ("quay.io/x/y_z__w-v.1:t-1.2_3", "quay.io/x/y_z__w-v.1:t-1.2_3", "quay.io/x/y_z__w-v.1:t-1.2_3"),
    ])
    func normalize(text: String, full: String, familiar: String) throws {
        let ref = try Reference(parsing: text)
        #expect(ref.description == full)
        #expect(ref.familiar == familiar)
    }

    @Test("a digest reference has no default tag")
    func digestReference() throws {
        let hex = String(repeating: "ab", count: 32)
        let ref = try Reference(parsing: "busybox@sha256:" + hex)
        #expect(ref.tag == nil)
        #expect(ref.digest?.hex == hex)
        #expect(ref.familiar == "busybox@sha256:" + hex)
    }

    @Test("bad references name what is wrong", arguments: [
        ("Busybox", "repository"), ("busybox:", "tag"), ("a//b", "repository"), ("x:-bad", "tag"),
        ("busybox@sha256:12", "64 lowercase hex"), ("busybox@md5:" + String(repeating: "a", count: 32), "only sha256"), ("", "empty"),
    ])
    func bad(text: String, expected: String) {
        let message = errorText { _ = try Reference(parsing: text) }
        #expect(message.contains(expected), "\(message)")
    }

    @Test("SHA-256 of known inputs")
    func sha256() {
        #expect(Digest.of("").hex == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(Digest.of("abc").hex == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }
}
