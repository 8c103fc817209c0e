fn main() {
    std::process::exit(tapflow_client::run(std::env::args_os()));
}
