"""D-FINE: backbone, hybrid encoder, FDR decoder, matcher, criterion and post-processor."""
