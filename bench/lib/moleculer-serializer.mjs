/** A Moleculer serializer on msgpackr, the codec Switchboard uses, so that every scenario encodes alike. */
import { createRequire } from 'node:module';
import { Packr } from 'msgpackr';

const require = createRequire(import.meta.url);

export function msgpackrSerializer() {
  const { Serializers } = require('moleculer');
  const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });
  class MsgpackrSerializer extends Serializers.Base {
    serialize(obj) {
      return packr.pack(obj);
    }
    deserialize(buf) {
      return packr.unpack(buf);
    }
  }
  return new MsgpackrSerializer();
}

/** Broker options both bench brokers share: quiet, no metrics or tracing, TCP with static URLs only. */
export function brokerOptions(nodeID, urls) {
  return {
    nodeID,
    logger: false,
    metrics: false,
    tracing: false,
    serializer: msgpackrSerializer(),
    transporter: { type: 'TCP', options: { udpDiscovery: false, port: 0, urls } },
  };
}
