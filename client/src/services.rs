//! A small built-in table of well-known port names, used for display (without `-n`) and in
//! filters (`port https`). Deliberately small and protocol-agnostic: no /etc/services lookup,
//! so output does not depend on the host it runs on.

const SERVICES: &[(u16, &str)] = &[
    (20, "ftp-data"),
    (21, "ftp"),
    (22, "ssh"),
    (23, "telnet"),
    (25, "smtp"),
    (53, "domain"),
    (67, "bootps"),
    (68, "bootpc"),
    (69, "tftp"),
    (80, "http"),
    (88, "kerberos"),
    (110, "pop3"),
    (111, "sunrpc"),
    (119, "nntp"),
    (123, "ntp"),
    (137, "netbios-ns"),
    (138, "netbios-dgm"),
    (139, "netbios-ssn"),
    (143, "imap"),
    (161, "snmp"),
    (162, "snmptrap"),
    (179, "bgp"),
    (389, "ldap"),
    (443, "https"),
    (445, "microsoft-ds"),
    (465, "smtps"),
    (500, "isakmp"),
    (514, "syslog"),
    (587, "submission"),
    (636, "ldaps"),
    (853, "domain-s"),
    (993, "imaps"),
    (995, "pop3s"),
    (1812, "radius"),
    (3306, "mysql"),
    (3389, "ms-wbt-server"),
    (4789, "vxlan"),
    (5060, "sip"),
    (5432, "postgresql"),
    (6081, "geneve"),
    (8080, "http-alt"),
];

pub fn port_name(port: u16) -> Option<&'static str> {
    SERVICES
        .binary_search_by_key(&port, |&(p, _)| p)
        .ok()
        .map(|i| SERVICES[i].1)
}

pub fn port_by_name(name: &str) -> Option<u16> {
    SERVICES.iter().find(|&&(_, n)| n == name).map(|&(p, _)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_round_trips() {
        assert!(SERVICES.windows(2).all(|w| w[0].0 < w[1].0));
        for &(p, n) in SERVICES {
            assert_eq!(port_name(p), Some(n));
            assert_eq!(port_by_name(n), Some(p));
        }
        assert_eq!(port_name(81), None);
        assert_eq!(port_by_name("nope"), None);
    }
}
