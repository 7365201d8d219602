//! `rigger-fake-imds PRIVATE_IP [INSTANCE_ID] [KEY=VALUE tag…]`: a fake EC2
//! instance metadata service (IMDSv2) on 127.0.0.1 for the demo, so that
//! the demo node gets a loopback private IP and talks to nothing else.
//! Prints its URL, then serves until SIGTERM/SIGINT.

use std::io::Write;
use std::process::ExitCode;

use rigger_tests::imds::{FakeImds, Instance};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(ip) = args.first() else {
        eprintln!("usage: rigger-fake-imds PRIVATE_IP [INSTANCE_ID] [KEY=VALUE tag…]");
        return ExitCode::from(64);
    };
    if ip.parse::<std::net::Ipv4Addr>().is_err() {
        eprintln!("rigger-fake-imds: {ip:?} is not an IPv4 address");
        return ExitCode::from(64);
    }
    let mut instance = Instance::at(args.get(1).map_or("i-0demo", String::as_str), ip);
    for tag in args.iter().skip(2) {
        let Some((key, value)) = tag.split_once('=') else {
            eprintln!("rigger-fake-imds: tag {tag:?} is not KEY=VALUE");
            return ExitCode::from(64);
        };
        instance.tags.insert(key.to_string(), value.to_string());
    }
    let imds = FakeImds::start(instance);
    println!("{}", imds.url());
    let _ = std::io::stdout().flush();
    // Serve until a signal ends the process (SIGTERM's default action).
    let _imds = imds;
    loop {
        std::thread::park();
    }
}
