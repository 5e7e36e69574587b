//! clustergo's `.proto` options (`clustergo/options.proto`, shipped with this
//! crate) and reading them from encoded descriptors.
//!
//! prost-types' descriptor structs drop extensions, so `option (clustergo.cmd)` is
//! read from the *encoded* `FileDescriptorProto`s (protoc's request, protox's
//! encoded set) with mirror structs that keep only names, nesting and that field.
//! It is read only when the compilation declares `clustergo.cmd` itself: then
//! protoc (or protox) has made sure no other extension of `MessageOptions` uses
//! its number.

use std::collections::HashMap;

use prost::Message;
use prost_types::FileDescriptorProto;
use prost_types::field_descriptor_proto::Type;

use crate::{descriptor, naming};

/// The import name of the options file: `import "clustergo/options.proto";`.
pub const OPTIONS_FILE: &str = "clustergo/options.proto";

/// The options file's text. The build.rs API serves it to protox under
/// [`OPTIONS_FILE`]; `protoc-gen-clustergo --write-include DIR` writes it out for
/// protoc users.
pub const OPTIONS_PROTO: &str = include_str!("../proto/clustergo/options.proto");

/// Field number of `clustergo.cmd` in `google.protobuf.MessageOptions` (why this
/// number: see the options file).
pub(crate) const CMD_FIELD: i32 = 52013;

/// An encoded `FileDescriptorSet`, its files left encoded.
#[cfg(feature = "build")]
#[derive(Clone, PartialEq, Message)]
pub(crate) struct EncodedSet {
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub(crate) file: Vec<Vec<u8>>,
}

/// An encoded `CodeGeneratorRequest`, its `proto_file`s left encoded.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct EncodedRequest {
    #[prost(bytes = "vec", repeated, tag = "15")]
    pub(crate) proto_file: Vec<Vec<u8>>,
}

/// What is read of an encoded `FileDescriptorProto`.
#[derive(Clone, PartialEq, Message)]
struct RawFile {
    #[prost(string, optional, tag = "2")]
    package: Option<String>,
    #[prost(message, repeated, tag = "4")]
    message_type: Vec<RawMessage>,
}

/// What is read of an encoded `DescriptorProto`.
#[derive(Clone, PartialEq, Message)]
struct RawMessage {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(message, repeated, tag = "3")]
    nested_type: Vec<RawMessage>,
    #[prost(message, optional, tag = "7")]
    options: Option<RawOptions>,
}

/// What is read of an encoded `MessageOptions`: the `uint32` extension, read
/// wide so an out-of-range value is reported rather than truncated.
#[derive(Clone, PartialEq, Message)]
struct RawOptions {
    #[prost(uint64, optional, tag = "52013")]
    cmd: Option<u64>,
}

/// The declared ids of a compilation, by fully qualified message name
/// (`.pkg.Outer.Inner`, `.Msg` without a package), unchecked.
#[derive(Debug, Default)]
pub(crate) struct Cmds {
    by_name: HashMap<String, u64>,
}

impl Cmds {
    /// Reads the ids of `encoded` files, if `files` (the same compilation,
    /// decoded) declare `clustergo.cmd`; none otherwise.
    pub(crate) fn read<'a>(
        files: &[FileDescriptorProto],
        encoded: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Self, String> {
        let mut cmds = Self::default();
        if !declared(files)? {
            return Ok(cmds);
        }
        for bytes in encoded {
            let file = RawFile::decode(bytes)
                .map_err(|e| format!("protoc-gen-clustergo: undecodable file descriptor: {e}"))?;
            let prefix = descriptor::fq_prefix(file.package.as_deref().unwrap_or_default());
            for m in &file.message_type {
                cmds.add(&prefix, m);
            }
        }
        Ok(cmds)
    }

    fn add(&mut self, prefix: &str, msg: &RawMessage) {
        let fq = format!("{prefix}.{}", msg.name.as_deref().unwrap_or_default());
        if let Some(cmd) = msg.options.as_ref().and_then(|o| o.cmd) {
            self.by_name.insert(fq.clone(), cmd);
        }
        for nested in &msg.nested_type {
            self.add(&fq, nested);
        }
    }

    /// The declared id of message `fq`, if any.
    pub(crate) fn get(&self, fq: &str) -> Option<u64> {
        self.by_name.get(fq).copied()
    }
}

/// Whether `files` declare `clustergo.cmd`, checked to be the field this
/// generator reads (a stale or edited copy of the options file is an error).
fn declared(files: &[FileDescriptorProto]) -> Result<bool, String> {
    for file in files.iter().filter(|f| f.package() == "clustergo") {
        let Some(ext) = file
            .extension
            .iter()
            .find(|e| e.name() == "cmd" && e.extendee() == ".google.protobuf.MessageOptions")
        else {
            continue;
        };
        if ext.number() != CMD_FIELD || ext.r#type() != Type::Uint32 {
            return Err(format!(
                "{}: declares (clustergo.cmd) as field {} of type {:?}, but this generator \
                 reads uint32 field {CMD_FIELD}: import the {OPTIONS_FILE} shipped with it",
                file.name(),
                ext.number(),
                ext.r#type()
            ));
        }
        return Ok(true);
    }
    Ok(false)
}

/// One `option (clustergo.cmd) = value;` as declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Declared {
    /// The proto file declaring the message.
    pub(crate) file: String,
    /// The message's name inside its package, nesting joined by `.`.
    pub(crate) message: String,
    /// The declared value.
    pub(crate) value: u64,
}

/// Checks the ids of one module (`scope`: "package `a.b`", "seed file `x.proto`"):
/// each in `1..=u16::MAX` (the runtime's cmd is a `u16`; 0 is what an unset id
/// reads as), and no id or generated constant twice. Returns the ids in order, or
/// every problem, one per line, naming the file and both messages.
pub(crate) fn check(scope: &str, declared: &[Declared]) -> Result<Vec<u16>, String> {
    let mut errors = Vec::new();
    let mut ids = Vec::new();
    let mut by_id: HashMap<u16, &Declared> = HashMap::new();
    let mut by_const: HashMap<String, &Declared> = HashMap::new();
    for d in declared {
        let Some(id) = u16::try_from(d.value).ok().filter(|&id| id != 0) else {
            errors.push(format!(
                "{}: message `{}`: option (clustergo.cmd) = {} is not a valid id: ids are \
                 1..=65535 (the runtime's cmd is a u16; 0 reads as unset)",
                d.file, d.message, d.value
            ));
            continue;
        };
        ids.push(id);
        if let Some(first) = by_id.get(&id) {
            errors.push(format!(
                "{}: message `{}` repeats id {id} of message `{}` ({}) in {scope}",
                d.file, d.message, first.message, first.file
            ));
        } else {
            by_id.insert(id, d);
        }
        let constant = naming::cmd_const(&d.message);
        if let Some(first) = by_const.get(&constant) {
            errors.push(format!(
                "{}: message `{}` and message `{}` ({}) would both make constant `{constant}` \
                 in {scope}",
                d.file, d.message, first.message, first.file
            ));
        } else {
            by_const.insert(constant, d);
        }
    }
    if errors.is_empty() {
        Ok(ids)
    } else {
        Err(errors.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use prost_types::FieldDescriptorProto;

    use super::*;

    fn d(file: &str, message: &str, value: u64) -> Declared {
        Declared {
            file: file.to_owned(),
            message: message.to_owned(),
            value,
        }
    }

    #[test]
    fn check_rules() {
        // Declared ids, expected ids or the texts every error must contain.
        type Case<'a> = (Vec<Declared>, Result<Vec<u16>, Vec<&'a str>>);
        let cases: Vec<Case<'_>> = vec![
            (vec![], Ok(vec![])),
            (
                vec![d("a.proto", "Move", 12), d("a.proto", "Room.Info", 65535)],
                Ok(vec![12, 65535]),
            ),
            (vec![d("a.proto", "Move", 1)], Ok(vec![1])),
            (
                vec![d("a.proto", "Move", 0)],
                Err(vec!["a.proto: message `Move`", "= 0 is not a valid id"]),
            ),
            (
                vec![d("a.proto", "Move", 65536)],
                Err(vec!["= 65536 is not a valid id", "1..=65535"]),
            ),
            (
                vec![d("a.proto", "Move", 12), d("b.proto", "Chat", 12)],
                Err(vec![
                    "b.proto: message `Chat` repeats id 12 of message `Move` (a.proto) in \
                     package `p`",
                ]),
            ),
            (
                vec![d("a.proto", "Room.Info", 1), d("a.proto", "RoomInfo", 2)],
                Err(vec![
                    "message `RoomInfo` and message `Room.Info` (a.proto) would both make \
                     constant `ROOM_INFO_CMD`",
                ]),
            ),
            (
                // Every problem is reported, not just the first.
                vec![
                    d("a.proto", "A", 0),
                    d("a.proto", "B", 7),
                    d("a.proto", "C", 7),
                ],
                Err(vec![
                    "message `A`",
                    "message `C` repeats id 7 of message `B`",
                ]),
            ),
        ];
        for (declared, want) in cases {
            let got = check("package `p`", &declared);
            match (got, want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{declared:?}"),
                (Err(got), Err(needles)) => {
                    for n in needles {
                        assert!(got.contains(n), "{declared:?}: {n:?} not in {got:?}");
                    }
                }
                (got, want) => panic!("{declared:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    fn options_file(number: i32, ty: Type) -> FileDescriptorProto {
        FileDescriptorProto {
            name: Some(OPTIONS_FILE.to_owned()),
            package: Some("clustergo".to_owned()),
            extension: vec![FieldDescriptorProto {
                name: Some("cmd".to_owned()),
                number: Some(number),
                r#type: Some(ty as i32),
                extendee: Some(".google.protobuf.MessageOptions".to_owned()),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn message(name: &str, cmd: Option<u64>, nested: Vec<RawMessage>) -> RawMessage {
        RawMessage {
            name: Some(name.to_owned()),
            nested_type: nested,
            options: cmd.map(|cmd| RawOptions { cmd: Some(cmd) }),
        }
    }

    #[test]
    fn reads_nested_ids_only_when_declared() {
        let file = RawFile {
            package: Some("game.room".to_owned()),
            message_type: vec![
                message("Move", Some(12), vec![]),
                message("Room", None, vec![message("Info", Some(70000), vec![])]),
            ],
        }
        .encode_to_vec();
        let seedish = RawFile {
            package: None,
            message_type: vec![message("request", Some(3), vec![])],
        }
        .encode_to_vec();
        let files = [options_file(CMD_FIELD, Type::Uint32)];
        let cmds = Cmds::read(&files, [file.as_slice(), seedish.as_slice()]).unwrap();
        assert_eq!(cmds.get(".game.room.Move"), Some(12));
        assert_eq!(cmds.get(".game.room.Room"), None);
        assert_eq!(cmds.get(".game.room.Room.Info"), Some(70000));
        assert_eq!(cmds.get(".request"), Some(3));

        // Without the declaration the field is someone else's: nothing is read.
        let cmds = Cmds::read(&[], [file.as_slice()]).unwrap();
        assert_eq!(cmds.get(".game.room.Move"), None);
    }

    #[test]
    fn a_different_declaration_is_an_error() {
        for (number, ty) in [(CMD_FIELD + 1, Type::Uint32), (CMD_FIELD, Type::String)] {
            let err = Cmds::read(&[options_file(number, ty)], []).unwrap_err();
            assert!(err.contains("clustergo/options.proto: declares"), "{err}");
            assert!(err.contains("uint32 field 52013"), "{err}");
        }
    }

    #[test]
    fn shipped_file_declares_the_field_read() {
        assert!(OPTIONS_PROTO.contains(&format!("uint32 cmd = {CMD_FIELD};")));
        assert!(OPTIONS_PROTO.contains("package clustergo;"));
    }
}
