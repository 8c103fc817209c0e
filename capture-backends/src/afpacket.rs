//! AF_PACKET TPACKET_V3 backend (being written).
