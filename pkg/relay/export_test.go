package relay

// ParseConnectorFile is what LoadConnector does with a file's content, for
// the fuzz tests.
func ParseConnectorFile(name string, raw []byte) (Connector, error) {
	cfg, err := decodeConfig(raw)
	if err != nil {
		return Connector{}, err
	}
	return ParseConnector(name, cfg)
}
