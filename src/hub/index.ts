/**
 * tether-ws/hub: the real-time hub behind `tether serve` (pages, health, echo,
 * a topic relay, chat and live scores on one port), as a library.
 */
export { createHub, defaultApps, type Hub, type HubStats } from './hub.js'
export {
  type AuthConfig,
  type BackplaneConfig,
  ConfigError,
  DEFAULT_PUBLISH_LIMIT,
  type HistoryConfig,
  HUB_DEFAULTS,
  type HubConfig,
  type PublishLimit,
  type SettingSpec,
  envName,
  isOrigin,
  mergeSettings,
  resolveHubConfig,
  settingsFromEnv,
  settingsFromFile,
  unknownEnvNames,
} from './config.js'
export type { AdmitOutcome, App, AppServices, HistoryServices, HubClient, PublishOutcome, Refusal, Route } from './app.js'
export { type AppHistory, appHistoryTopic } from './history.js'
export { LOG_LEVELS, type HubLogger, type LogLevel, createLogger, lineLogger, prettyLine } from './log.js'
export { type HubMetrics, type MetricsSources, createMetrics } from './metrics.js'
export { BEARER_PROTOCOL_PREFIX, HUB_PROTOCOL, TOKEN_COOKIE, TOKEN_QUERY } from './auth.js'
export { echoApp } from './apps/echo.js'
export { relayApp } from './apps/relay.js'
export { type ChatOptions, chatApp } from './apps/chat.js'
export { scoresApp } from './apps/scores.js'
export { deliveryApp } from './apps/delivery.js'
