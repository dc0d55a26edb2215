//! Parsing tables for every command, and the `parse(display(c)) == c` property.

use super::*;
use proptest::prelude::*;

fn p(s: &str) -> Result<Command, ParseError> {
    Command::parse(s.as_bytes())
}

#[test]
fn every_rfc959_command_parses() {
    let table: Vec<(&str, Command)> = vec![
        ("USER alice", Command::User("alice".into())),
        ("PASS s3cret pw", Command::Pass(Password("s3cret pw".into()))),
        ("PASS", Command::Pass(Password(String::new()))),
        ("ACCT x", Command::Acct("x".into())),
        ("CWD /a b", Command::Cwd("/a b".into())),
        ("XCWD d", Command::Cwd("d".into())),
        ("CDUP", Command::Cdup),
        ("XCUP", Command::Cdup),
        ("SMNT /mnt", Command::Smnt("/mnt".into())),
        ("REIN", Command::Rein),
        ("QUIT", Command::Quit),
        ("PORT 127,0,0,1,4,1", Command::Port("127.0.0.1:1025".parse().unwrap())),
        ("PASV", Command::Pasv),
        ("TYPE I", Command::Type(TransferType::Image)),
        ("TYPE A", Command::Type(TransferType::Ascii(FormatControl::NonPrint))),
        ("TYPE A N", Command::Type(TransferType::Ascii(FormatControl::NonPrint))),
        ("type a t", Command::Type(TransferType::Ascii(FormatControl::Telnet))),
        ("TYPE E", Command::Type(TransferType::Ebcdic(FormatControl::NonPrint))),
        ("TYPE L 8", Command::Type(TransferType::Local(8))),
        ("TYPE L8", Command::Type(TransferType::Local(8))),
        ("STRU F", Command::Stru(Structure::File)),
        ("STRU R", Command::Stru(Structure::Record)),
        ("MODE S", Command::Mode(TransferMode::Stream)),
        ("MODE B", Command::Mode(TransferMode::Block)),
        ("RETR file name.txt", Command::Retr("file name.txt".into())),
        ("STOR x", Command::Stor("x".into())),
        ("STOU", Command::Stou(None)),
        ("STOU base", Command::Stou(Some("base".into()))),
        ("APPE log", Command::Appe("log".into())),
        ("ALLO 1024", Command::Allo(1024)),
        ("ALLO 1024 R 128", Command::Allo(1024)),
        ("REST 18446744073709551615", Command::Rest(u64::MAX)),
        ("RNFR a", Command::Rnfr("a".into())),
        ("RNTO b", Command::Rnto("b".into())),
        ("ABOR", Command::Abor),
        ("DELE f", Command::Dele("f".into())),
        ("RMD d", Command::Rmd("d".into())),
        ("XRMD d", Command::Rmd("d".into())),
        ("MKD d", Command::Mkd("d".into())),
        ("XMKD d", Command::Mkd("d".into())),
        ("PWD", Command::Pwd),
        ("XPWD", Command::Pwd),
        ("LIST", Command::List(None)),
        ("LIST -la /x", Command::List(Some("-la /x".into()))),
        ("NLST", Command::Nlst(None)),
        ("SITE HELP", Command::Site(SiteCommand::Help(None))),
        ("SITE CHMOD 0755 a b", Command::Site(SiteCommand::Chmod { mode: 0o755, path: "a b".into() })),
        ("SITE IDLE 60", Command::Site(SiteCommand::Other("IDLE 60".into()))),
        ("SYST", Command::Syst),
        ("STAT", Command::Stat(None)),
        ("STAT /", Command::Stat(Some("/".into()))),
        ("HELP", Command::Help(None)),
        ("HELP retr", Command::Help(Some("retr".into()))),
        ("NOOP", Command::Noop),
        ("noop", Command::Noop),
    ];
    for (line, want) in table {
        assert_eq!(p(line), Ok(want), "{line}");
    }
}

#[test]
fn extension_commands_parse() {
    let t = listing::parse_timeval("20200102030405").unwrap();
    let table: Vec<(&str, Command)> = vec![
        ("FEAT", Command::Feat),
        ("OPTS UTF8 ON", Command::Opts(OptsCommand::Utf8(true))),
        ("OPTS utf8 off", Command::Opts(OptsCommand::Utf8(false))),
        ("OPTS MLST type;size;", Command::Opts(OptsCommand::Mlst(vec!["type".into(), "size".into()]))),
        ("OPTS MODE Z LEVEL 3", Command::Opts(OptsCommand::Other("MODE Z LEVEL 3".into()))),
        ("EPRT |1|127.0.0.1|5000|", Command::Eprt("127.0.0.1:5000".parse().unwrap())),
        ("EPRT |2|::1|5000|", Command::Eprt("[::1]:5000".parse().unwrap())),
        ("EPSV", Command::Epsv(EpsvArg::Default)),
        ("EPSV 2", Command::Epsv(EpsvArg::Proto(2))),
        ("EPSV ALL", Command::Epsv(EpsvArg::All)),
        ("SIZE f", Command::Size("f".into())),
        ("MDTM f", Command::Mdtm("f".into())),
        ("MLST", Command::Mlst(None)),
        ("MLSD dir", Command::Mlsd(Some("dir".into()))),
        ("MFMT 20200102030405 a file", Command::Mfmt(t, "a file".into())),
        ("HOST ftp.example.com", Command::Host("ftp.example.com".into())),
        ("AUTH tls", Command::Auth("TLS".into())),
        ("PBSZ 0", Command::Pbsz(0)),
        ("PROT P", Command::Prot(ProtLevel::Private)),
        ("CCC", Command::Ccc),
    ];
    for (line, want) in table {
        assert_eq!(p(line), Ok(want), "{line}");
    }
}

#[test]
fn errors_carry_rfc_codes() {
    let table: Vec<(&[u8], u16)> = vec![
        (b"", 500),
        (b"   ", 500),
        (b"FOOBAR", 500),
        (b"XYZ1 a", 500),
        (b"RETR", 501),
        (b"RETR    ", 501),
        (b"PORT 1,2,3", 501),
        (b"PORT 300,1,1,1,1,1", 501),
        (b"TYPE X", 501),
        (b"TYPE I X", 501),
        (b"TYPE L", 501),
        (b"STRU X", 501),
        (b"MODE X", 501),
        (b"REST -1", 501),
        (b"REST 99999999999999999999", 501),
        (b"ALLO x", 501),
        (b"EPRT |3|1.2.3.4|5|", 522),
        (b"EPRT garbage", 501),
        (b"EPSV 1x", 501),
        (b"MFMT 2020 x", 501),
        (b"MFMT 20200102030405", 501),
        (b"SITE CHMOD 999 x", 501),
        (b"SITE CHMOD 755", 501),
        (b"RETR \xff\xfe", 501),
        (b"PROT Q", 501),
    ];
    for (line, code) in table {
        let err = Command::parse(line).unwrap_err();
        assert_eq!(err.reply_code().0, code, "{:?} -> {err:?}", String::from_utf8_lossy(line));
    }
}

#[test]
fn nul_anywhere_is_a_501() {
    for line in ["RETR a\0b", "USER al\0ice", "USER \0", "PASS x\0"] {
        assert_eq!(p(line).unwrap_err().reply_code().0, 501, "{line:?}");
    }
}

#[test]
fn password_is_never_in_debug() {
    let c = p("PASS hunter2").unwrap();
    assert!(!format!("{c:?}").contains("hunter2"));
    assert_eq!(c.to_string(), "PASS hunter2");
}

#[test]
fn every_verb_in_help_list_parses() {
    for v in VERBS {
        let r = Command::parse(format!("{v} x").as_bytes());
        assert!(!matches!(r, Err(ParseError::Unknown(_))), "{v}");
    }
}

fn path_arg() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 ._/\u{e9}\u{4e2d}-]{1,24}".prop_filter("not blank", |s| !s.trim().is_empty())
}

/// A strategy for every command of a verb: one arm per verb, so a new verb does not compile until
/// the round-trip property covers it.
fn command_of(v: Verb) -> BoxedStrategy<Command> {
    use Command as C;
    let path = path_arg;
    let word = || "[A-Za-z][A-Za-z0-9.-]{0,11}";
    let addr4 = || any::<([u8; 4], u16)>();
    match v {
        Verb::User => path().prop_map(C::User).boxed(),
        Verb::Pass => "[ -~]{0,20}".prop_map(|s| C::Pass(Password(s.trim_start().to_string()))).boxed(),
        Verb::Acct => path().prop_map(C::Acct).boxed(),
        Verb::Cwd => path().prop_map(C::Cwd).boxed(),
        Verb::Cdup => Just(C::Cdup).boxed(),
        Verb::Smnt => path().prop_map(C::Smnt).boxed(),
        Verb::Rein => Just(C::Rein).boxed(),
        Verb::Quit => Just(C::Quit).boxed(),
        Verb::Port => addr4().prop_map(|(ip, port)| C::Port(SocketAddrV4::new(ip.into(), port))).boxed(),
        Verb::Pasv => Just(C::Pasv).boxed(),
        Verb::Type => prop_oneof![
            Just(TransferType::Image),
            Just(TransferType::Ascii(FormatControl::NonPrint)),
            Just(TransferType::Ascii(FormatControl::Asa)),
            Just(TransferType::Ascii(FormatControl::Telnet)),
            Just(TransferType::Ebcdic(FormatControl::Telnet)),
            Just(TransferType::Ebcdic(FormatControl::NonPrint)),
            (1u8..=255).prop_map(TransferType::Local)
        ]
        .prop_map(C::Type)
        .boxed(),
        Verb::Stru => {
            prop_oneof![Just(Structure::File), Just(Structure::Record), Just(Structure::Page)].prop_map(C::Stru).boxed()
        }
        Verb::Mode => prop_oneof![
            Just(TransferMode::Stream),
            Just(TransferMode::Block),
            Just(TransferMode::Compressed),
            Just(TransferMode::Deflate)
        ]
        .prop_map(C::Mode)
        .boxed(),
        Verb::Retr => path().prop_map(C::Retr).boxed(),
        Verb::Stor => path().prop_map(C::Stor).boxed(),
        Verb::Stou => proptest::option::of(path()).prop_map(C::Stou).boxed(),
        Verb::Appe => path().prop_map(|p| C::Appe(p.trim_start().to_string())).boxed(),
        Verb::Allo => any::<u64>().prop_map(C::Allo).boxed(),
        Verb::Rest => any::<u64>().prop_map(C::Rest).boxed(),
        Verb::Rnfr => path().prop_map(C::Rnfr).boxed(),
        Verb::Rnto => path().prop_map(C::Rnto).boxed(),
        Verb::Abor => Just(C::Abor).boxed(),
        Verb::Dele => path().prop_map(C::Dele).boxed(),
        Verb::Rmd => path().prop_map(C::Rmd).boxed(),
        Verb::Mkd => path().prop_map(C::Mkd).boxed(),
        Verb::Pwd => Just(C::Pwd).boxed(),
        Verb::List => proptest::option::of(path()).prop_map(C::List).boxed(),
        Verb::Nlst => proptest::option::of(path()).prop_map(C::Nlst).boxed(),
        Verb::Site => prop_oneof![
            proptest::option::of(word()).prop_map(SiteCommand::Help),
            (0u32..=0o7777, path()).prop_map(|(mode, p)| SiteCommand::Chmod { mode, path: p }),
            (any::<u64>(), path().prop_filter("no leading space", |p| !p.starts_with(' ')))
                .prop_map(|(size, path)| SiteCommand::Segment(SegmentOp::Begin { size, path })),
            path().prop_filter("trimmed", |p| p.trim() == p).prop_map(|p| SiteCommand::Segment(SegmentOp::End(p))),
            path().prop_filter("trimmed", |p| p.trim() == p).prop_map(|p| SiteCommand::Segment(SegmentOp::Abort(p))),
            ("[A-GI-Z][A-Z]{2,5}", proptest::option::of("[a-z0-9]{1,5}"))
                .prop_filter("not CHMOD", |(s, _)| s != "CHMOD")
                .prop_map(|(s, a)| SiteCommand::Other(a.map_or(s.clone(), |a| format!("{s} {a}")))),
        ]
        .prop_map(C::Site)
        .boxed(),
        Verb::Syst => Just(C::Syst).boxed(),
        Verb::Stat => proptest::option::of(path()).prop_map(C::Stat).boxed(),
        Verb::Help => proptest::option::of(word()).prop_map(C::Help).boxed(),
        Verb::Noop => Just(C::Noop).boxed(),
        Verb::Feat => Just(C::Feat).boxed(),
        Verb::Opts => prop_oneof![
            any::<bool>().prop_map(OptsCommand::Utf8),
            proptest::collection::vec("[a-z.]{1,8}", 0..5).prop_map(OptsCommand::Mlst),
            Just(OptsCommand::Hash(None)),
            proptest::sample::select(HashAlg::ALL.to_vec()).prop_map(|a| OptsCommand::Hash(Some(Ok(a)))),
            "[A-Z][A-Z0-9]{2,6}"
                .prop_filter("not an algorithm", |n| HashAlg::from_name(n).is_none())
                .prop_map(|n| OptsCommand::Hash(Some(Err(n)))),
            ("[A-LN-TV-Z][A-Z]{2,4}", "[a-z0-9]{1,5}")
                .prop_filter("not HASH", |(n, _)| n != "HASH")
                .prop_map(|(n, v)| OptsCommand::Other(format!("{n} {v}"))),
        ]
        .prop_map(C::Opts)
        .boxed(),
        Verb::Eprt => prop_oneof![
            addr4().prop_map(|(ip, port)| SocketAddr::from((ip, port))),
            any::<([u16; 8], u16)>().prop_map(|(ip, port)| SocketAddr::from((ip, port))),
        ]
        .prop_map(C::Eprt)
        .boxed(),
        Verb::Epsv => prop_oneof![Just(EpsvArg::Default), Just(EpsvArg::All), (1u32..3).prop_map(EpsvArg::Proto)]
            .prop_map(C::Epsv)
            .boxed(),
        Verb::Size => path().prop_map(C::Size).boxed(),
        Verb::Mdtm => path().prop_map(C::Mdtm).boxed(),
        Verb::Mlst => proptest::option::of(path()).prop_map(C::Mlst).boxed(),
        Verb::Mlsd => proptest::option::of(path()).prop_map(C::Mlsd).boxed(),
        Verb::Mfmt => (0u64..4_000_000_000_000, path())
            .prop_map(|(ms, p)| C::Mfmt(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms), p))
            .boxed(),
        Verb::Host => word().prop_map(C::Host).boxed(),
        Verb::Rang => (0u64..u64::MAX / 2, 0u64..u64::MAX / 2).prop_map(|(a, b)| C::Rang(a, a + b)).boxed(),
        Verb::Xsha1 => path().prop_map(C::Xsha1).boxed(),
        Verb::Xsha256 => path().prop_map(C::Xsha256).boxed(),
        Verb::Xsha512 => path().prop_map(C::Xsha512).boxed(),
        Verb::Xmd5 => path().prop_map(C::Xmd5).boxed(),
        Verb::Xcrc => path().prop_map(C::Xcrc).boxed(),
        Verb::Auth => "[A-Z][A-Z-]{0,5}".prop_map(C::Auth).boxed(),
        Verb::Pbsz => any::<u64>().prop_map(C::Pbsz).boxed(),
        Verb::Prot => prop_oneof![
            Just(ProtLevel::Clear),
            Just(ProtLevel::Safe),
            Just(ProtLevel::Confidential),
            Just(ProtLevel::Private)
        ]
        .prop_map(C::Prot)
        .boxed(),
        Verb::Ccc => Just(C::Ccc).boxed(),
        Verb::Hash => path().prop_map(C::Hash).boxed(),
    }
}

fn any_command() -> impl Strategy<Value = Command> {
    proptest::sample::select(Verb::ALL).prop_flat_map(command_of)
}

#[test]
fn the_generator_covers_every_verb() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for v in Verb::ALL {
        let c = command_of(*v).new_tree(&mut runner).unwrap().current();
        assert_eq!(c.verb(), *v);
    }
}

proptest! {
    #[test]
    fn display_then_parse_is_identity(c in any_command()) {
        let wire = c.to_string();
        prop_assert_eq!(Command::parse(wire.as_bytes()), Ok(c));
    }

    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = Command::parse(&bytes);
    }
}

#[test]
fn odd_arguments_display_in_a_form_that_parses_back() {
    // A blank fact is no fact (it used to become "", displayed as ";", which parses to no facts).
    let c = p("OPTS MLST type; ;size").unwrap();
    assert_eq!(c, Command::Opts(OptsCommand::Mlst(vec!["type".into(), "size".into()])));
    assert_eq!(p(&c.to_string()), Ok(c));
    // Before 1970 a fraction of a second must not move the whole second on display.
    let c = p("MFMT 19691231235950.500 x").unwrap();
    assert_eq!(c.to_string(), "MFMT 19691231235950.500 x");
    assert_eq!(p(&c.to_string()), Ok(c));
}
