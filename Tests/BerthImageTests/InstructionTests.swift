import Testing
@testable import BerthImage

@Suite("Containerfile instructions")
struct InstructionTests {
    @Test("continuations, comments, exec and shell forms, flags")
    func parse() throws {
        let text = """
        # a comment
        FROM busybox
        RUN echo a && \\
            echo b
        CMD ["sh", "-c", "echo hi"]
        COPY --chown=1:2 a b
        """
        let list = try Instruction.parse(text, describing: "Containerfile")
        #expect(list.map(\.keyword) == ["FROM", "RUN", "CMD", "COPY"])
        #expect(list[1].command == ["/bin/sh", "-c", "echo a &&  echo b"])
        #expect(list[1].line == 3)
        #expect(list[2].json == ["sh", "-c", "echo hi"])
        #expect(list[3].flags["chown"] == "1:2" && list[3].text == "a b")
    }

    @Test("metadata instructions change the config")
    func apply() throws {
        var config = ImageConfig.Config()
        for line in ["ENV A=1 B=\"two words\"", "ENV A 3", "WORKDIR /app", "WORKDIR sub", "USER 1000:1000", "EXPOSE 80 53/udp",
                     "LABEL org.x=\"y z\"", "ENTRYPOINT [\"/bin/tool\"]", "CMD --help"] {
            #expect(try Instruction.single(line, describing: "t").apply(to: &config, describing: "t"))
        }
        #expect(config.Env == ["B=two words", "A=3"])
        #expect(config.WorkingDir == "/app/sub")
        #expect(config.User == "1000:1000")
        #expect(config.ExposedPorts?.keys.sorted() == ["53/udp", "80/tcp"])
        #expect(config.Labels == ["org.x": "y z"])
        #expect(config.Entrypoint == ["/bin/tool"])
        #expect(config.Cmd == ["/bin/sh", "-c", "--help"])
        #expect(try !Instruction.single("RUN x", describing: "t").apply(to: &config, describing: "t"))
    }
}
