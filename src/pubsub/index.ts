/**
 * tether/pubsub: topics and backplanes. Servers publish with
 * `wss.publish(topic, data)`; this entry holds what plugs into them: the
 * backplane interface, the in-process broker, and the pieces (registry,
 * policies, hub) for building topics over another transport. Redis and NATS
 * are at 'tether/pubsub/redis' and 'tether/pubsub/nats', so that their
 * clients load only when used.
 */
export {
  type Backplane,
  type BackplaneCounts,
  type BackplaneEvent,
  type BackplaneMessage,
  type BackplaneSink,
  type Envelope,
  EnvelopeBackplane,
  decodeEnvelope,
  encodeBatch,
  encodeEnvelope,
  splitBatch,
} from './backplane.js'
export {
  type PublishResult,
  type SlowConsumerInfo,
  type Subscriber,
  type TopicHubOptions,
  type TopicStats,
  TopicHub,
  kCloseSlow,
  kDeliver,
  kHeld,
  kWatchWritable,
} from './hub.js'
export { MemoryBackplane, MemoryBroker } from './memory.js'
export { DEFAULT_TOPIC_POLICY, LatestPending, type SlowConsumerPolicy, type TopicPolicy, resolveTopicPolicy } from './policy.js'
export { TopicRegistry, checkTopic } from './topics.js'
export {
  type AppendRequest,
  type AppendResult,
  DEFAULT_HISTORY_POLICY,
  type HistoryEntry,
  type HistoryEvent,
  type HistoryFeed,
  type HistoryPolicy,
  type HistoryStore,
  type Position,
  type ReadResult,
  decodeRequests,
  encodeRequests,
  newEpoch,
  resolveHistoryPolicy,
} from './history.js'
export { MemoryHistory, type MemoryHistoryOptions } from './history-memory.js'
export { Delivery, type DeliveryHooks, type DeliveryOptions, type DeliveryStats, type Gap, type JoinPlan, type JoinStart, type LogEntry } from './delivery.js'
export {
  DeliveryServer,
  type DeliveryServerLike,
  type DeliveryServerOptions,
  DeliverySession,
  type DeliverySocketLike,
  type SessionHooks,
  type TopicNames,
  attachDelivery,
  isDeliveryProtocol,
  selectDeliveryProtocol,
} from './delivery-server.js'
