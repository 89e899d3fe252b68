// FraudPipeline from TypeScript: the SDK in sdks/fraud-pipeline is generated from the provider's
// schema (provider/schema.json) by `pulumi install` / `pulumi package add ../../provider`.
// Inputs are the stack-file settings under their stack-file names; `region` must be the stack's
// aws:region (Pulumi.yaml). Settings are plain values: they are validated when the component is
// constructed, before anything is declared, with the same messages as a stack file.
import * as fraudPipeline from "@pulumi/fraud-pipeline";

const fraud = new fraudPipeline.FraudPipeline("payments-fraud", {
    environment: "qa",
    environmentSuffix: "team1",
    region: "eu-west-1",
    networkEnabled: false,
    kinesisShardCount: 2,
    blockedMerchants: ["Unknown Store", "Shady Shop"],
    manageApiGatewayAccount: false,
    dynamodbBillingMode: "PAY_PER_REQUEST",
    logRetentionDays: 14,
    tags: { team: "payments" },
});

export const fraudApiEndpoint = fraud.apiEndpoint;
export const fraudAlertTopic = fraud.alertTopicArn;
export const transactionsTable = fraud.tableName;
export const kinesisStream = fraud.streamName;
export const functionNames = fraud.functionNames;
